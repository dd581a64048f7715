"""The OS edge: syscalls through ctypes (unshare, setns, mount, pivot_root, capset, seccomp), mounts, namespaces, cgroupfs, netlink, nftables."""
