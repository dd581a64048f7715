"""skiff's default seccomp profile: what every container gets unless it is --privileged or asks
for `--security-opt seccomp=unconfined` or a profile of its own.

The policy is Docker's (moby's profiles/seccomp/default.json): deny with EPERM by default and
allow a fixed list of syscalls, some only with safe arguments, some only when the container holds
the capability that makes them meaningful, some only on one architecture. It is written here as
groups by purpose so a reader can see *why* a syscall is allowed; `profile()` assembles the groups
into Docker's profile format (`archMap`, `includes`/`excludes`), which
`skiff.linux.seccomp_docker.docker_profile_to_oci()` narrows for one container's capabilities and
the host's architecture and kernel. tests/unit/engine/test_seccomp_default.py proves the result
equals Docker's for several capability sets.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["profile"]

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
EPERM = 1
ENOSYS = 38

# ---- allowed for every container ----------------------------------------------------------------

# Files and directories: open, read/write, metadata, links, extended attributes.
_FILES = """
    access faccessat faccessat2 open openat openat2 creat close close_range
    read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2
    lseek _llseek readahead fadvise64 fadvise64_64 fallocate
    truncate truncate64 ftruncate ftruncate64 fsync fdatasync sync syncfs sync_file_range
    copy_file_range sendfile sendfile64 splice tee vmsplice
    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64
    fstatfs fstatfs64
    chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32 umask
    utime utimes utimensat utimensat_time64 futimesat
    mkdir mkdirat mknod mknodat rmdir rename renameat renameat2 link linkat symlink symlinkat
    unlink unlinkat readlink readlinkat getdents getdents64 chdir fchdir getcwd
    getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
    listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr
    removexattrat
    flock name_to_handle_at cachestat
"""

# Descriptors, polling, notification and asynchronous I/O.
_DESCRIPTORS = """
    dup dup2 dup3 fcntl fcntl64 ioctl pipe pipe2
    poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old
    epoll_pwait epoll_pwait2
    eventfd eventfd2 signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64
    timerfd_settime timerfd_settime64
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    memfd_create memfd_secret
"""

# Memory management of the calling process.
_MEMORY = """
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages
    mlock mlock2 mlockall munlock munlockall membarrier
    pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal
"""

# Processes and threads: create (clone is below, with its argument filter), exec, wait, exit,
# identity of the process, futexes, thread-local state, restartable sequences.
_PROCESSES = """
    fork vfork execve execveat exit exit_group wait4 waitid waitpid
    getpid getppid gettid getpgid getpgrp setpgid getsid setsid
    futex futex_time64 futex_wait futex_wake futex_requeue futex_waitv
    set_tid_address get_robust_list set_robust_list get_thread_area set_thread_area
    rseq restart_syscall prctl seccomp capget capset
    pidfd_open pidfd_send_signal process_mrelease uretprobe
"""

# Credentials: reading them always; changing them is checked by the kernel against the caps.
_CREDENTIALS = """
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
    getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
    setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
    setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
    setgroups setgroups32
"""

# Signals.
_SIGNALS = """
    kill tkill tgkill pause alarm sigaltstack sigprocmask sigreturn
    rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
"""

# Clocks, sleeping and timers (setting the clock needs CAP_SYS_TIME, below); adjtimex and
# clock_adjtime only change the clock with CAP_SYS_TIME, which the kernel checks.
_TIME = """
    time gettimeofday times adjtimex clock_adjtime clock_adjtime64
    clock_getres clock_getres_time64 clock_gettime clock_gettime64
    clock_nanosleep clock_nanosleep_time64 nanosleep
    getitimer setitimer timer_create timer_delete timer_getoverrun
    timer_gettime timer_gettime64 timer_settime timer_settime64
"""

# Scheduling, priorities and resource limits of one's own processes.
_SCHEDULING = """
    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
    sched_getparam sched_setparam sched_getscheduler sched_setscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    sched_rr_get_interval_time64 getpriority setpriority ioprio_get ioprio_set getcpu
    getrlimit ugetrlimit setrlimit prlimit64 getrusage
"""

# Sockets (socket(2) itself is below, with its argument filter).
_SOCKETS = """
    socketcall socketpair bind connect listen accept accept4 shutdown
    getsockname getpeername getsockopt setsockopt
    send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
"""

# System V and POSIX IPC (namespaced by the container's IPC namespace).
_IPC = """
    ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl
    shmget shmat shmdt shmctl
    mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive
    mq_timedreceive_time64 mq_notify mq_getsetattr
"""

# Information about the system, randomness, self-sandboxing, mount-table reads.
_SYSTEM = """
    uname sysinfo getrandom
    landlock_create_ruleset landlock_add_rule landlock_restrict_self
    listmount statmount riscv_hwprobe
"""

# personality(2) only with the personas that change nothing dangerous: PER_LINUX (0),
# PER_LINUX32 (8), UNAME26 (0x20000), UNAME26|PER_LINUX32 and the query value 0xffffffff.
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# socket(2) with any address family except AF_ALG (38, the kernel crypto API, a long history of
# bugs) and AF_VSOCK (40, host/guest sockets): family < 38, == 39 (AF_NFC) or > 40.
_SOCKET_FAMILY_RULES = (("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40))

# The namespace flags of clone(2): CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET.
# Without CAP_SYS_ADMIN, clone is allowed only when none of them is set.
_CLONE_NAMESPACE_FLAGS = 0x7E020000

# ---- allowed per architecture ---------------------------------------------------------------------

_BY_ARCH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (
        ("arm", "arm64"),
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

# ---- allowed only with a capability ---------------------------------------------------------------

_BY_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    # Namespaces, mounts, hostnames, quotas, tracing and the kernel log: all "admin".
    (
        "CAP_SYS_ADMIN",
        """
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
        lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount
        open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
        umount umount2 unshare
        """,
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# Since 4.8 a seccomp filter cannot be bypassed with ptrace, so tracing one's own children is
# safe without CAP_SYS_PTRACE on kernels from then on.
_PTRACE_SAFE_KERNEL = "4.8"
_PTRACE = "process_vm_readv process_vm_writev ptrace"

# The native architectures and the sub-architectures their processes may also use.
_ARCH_MAP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    ("SCMP_ARCH_MIPS64N32", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64")),
    ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    ("SCMP_ARCH_MIPSEL64N32", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64")),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    ("SCMP_ARCH_RISCV64", ()),
    ("SCMP_ARCH_LOONGARCH64", ()),
)


def _names(text: str) -> list[str]:
    return text.split()


def _build() -> dict[str, Any]:
    everyone: list[str] = []
    for group in (
        _FILES,
        _DESCRIPTORS,
        _MEMORY,
        _PROCESSES,
        _CREDENTIALS,
        _SIGNALS,
        _TIME,
        _SCHEDULING,
        _SOCKETS,
        _IPC,
        _SYSTEM,
    ):
        everyone += _names(group)
    syscalls: list[dict[str, Any]] = [{"names": sorted(everyone), "action": ALLOW}]
    syscalls.append(
        {"names": _names(_PTRACE), "action": ALLOW, "includes": {"minKernel": _PTRACE_SAFE_KERNEL}}
    )
    for op, family in _SOCKET_FAMILY_RULES:
        syscalls.append(
            {
                "names": ["socket"],
                "action": ALLOW,
                "args": [{"index": 0, "value": family, "op": op}],
            }
        )
    for persona in _PERSONAS:
        syscalls.append(
            {
                "names": ["personality"],
                "action": ALLOW,
                "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
            }
        )
    for arches, names in _BY_ARCH:
        syscalls.append(
            {"names": _names(names), "action": ALLOW, "includes": {"arches": list(arches)}}
        )
    for cap, names in _BY_CAPABILITY:
        syscalls.append({"names": _names(names), "action": ALLOW, "includes": {"caps": [cap]}})
    # clone without CAP_SYS_ADMIN: no namespace flags. The flags are argument 0, except on s390
    # where clone's first two arguments are swapped.
    no_namespaces = {"value": _CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    syscalls.append(
        {
            "names": ["clone"],
            "action": ALLOW,
            "args": [{"index": 0, **no_namespaces}],
            "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
        }
    )
    syscalls.append(
        {
            "names": ["clone"],
            "action": ALLOW,
            "args": [{"index": 1, **no_namespaces}],
            "includes": {"arches": ["s390", "s390x"]},
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    # clone3 passes its flags in a struct seccomp cannot inspect: answer ENOSYS so that libcs
    # fall back to clone(2), whose flags the rule above checks.
    syscalls.append(
        {
            "names": ["clone3"],
            "action": ERRNO,
            "errnoRet": ENOSYS,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": EPERM,
        "archMap": [
            {"architecture": arch, "subArchitectures": list(subs)} for arch, subs in _ARCH_MAP
        ],
        "syscalls": syscalls,
    }


_PROFILE = _build()


def profile() -> dict[str, Any]:
    """The default profile in Docker's format (a fresh copy: callers may change it)."""
    return copy.deepcopy(_PROFILE)
