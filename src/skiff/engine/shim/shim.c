/*
 * skiff-shim: supervises one container process (or one exec process) for skiffd.
 *
 * It detaches from skiffd (fork + setsid), becomes a child subreaper, runs
 * `<runtime> create` (or `<runtime> exec --detach`) with the process's stdio on pipes (or a
 * pty received through --console-socket), and then serves until the process exits:
 *   - stdout/stderr go to the json-file log (Docker's line format) and to attached clients;
 *   - clients connect to DIR/attach.sock and speak 8-byte framed messages (below);
 *   - the exit status is written atomically to DIR/exit as JSON, then every client gets an
 *     EXIT frame and the shim exits.
 * skiffd talks to the shim only through DIR (pid, exit) and the socket, so a daemon restart
 * just reconnects. Progress is reported on --status-fd: "ready", then "pid N" or "error MSG".
 *
 * Frame: byte 0 = type, bytes 1-3 = 0, bytes 4-7 = payload length (big endian).
 *   shim -> client: 1 stdout, 2 stderr, 5 exit (payload: decimal exit code)
 *   client -> shim: 0 stdin data, 3 close stdin, 4 resize (payload "rows cols"),
 *                   6 start (with --wait-start), 7 hello (payload: 1 byte, bit0 stdout,
 *                   bit1 stderr; a client that sends no hello gets no output)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum { F_STDIN = 0, F_STDOUT = 1, F_STDERR = 2, F_CLOSE_STDIN = 3, F_RESIZE = 4, F_EXIT = 5,
       F_START = 6, F_HELLO = 7 };
#define MAX_CLIENTS 64
#define MAX_RUNTIME_ARGS 16

static const char *runtime, *runtime_root, *id, *dir, *bundle, *exec_process, *log_path;
static const char *runtime_args[MAX_RUNTIME_ARGS];
static int n_runtime_args, tty, open_stdin, wait_start, status_fd = -1;
static long long log_max_size, log_size; /* 0: no rotation */
static int log_max_files = 1;
static int log_fd = -1, stdin_fd = -1, out_fd = -1, err_fd = -1, master_fd = -1, listen_fd = -1;
static int clients[MAX_CLIENTS], client_flags[MAX_CLIENTS];

static void status(const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    if (status_fd < 0) return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    if (write(status_fd, buf, n) < 0) { /* skiffd went away: nothing to tell */ }
}

static void die(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++) if (*p == '\n') *p = ' ';
    status("error %s", buf);
    fprintf(stderr, "skiff-shim %s: %s\n", id ? id : "?", buf);
    exit(1);
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

static void rfc3339nano(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    char base[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%09ldZ", base, ts.tv_nsec);
}

/* Docker's json-file rotation: LOG → LOG.1 → … → LOG.(max-file - 1); with max-file 1 the
 * log just starts over. Readers follow the rename by inode. */
static void rotate_log(void) {
    char from[4096], to[4096];
    if (log_max_files > 1) {
        for (int i = log_max_files - 1; i >= 1; i--) {
            if (i == 1) snprintf(from, sizeof from, "%s", log_path);
            else snprintf(from, sizeof from, "%s.%d", log_path, i - 1);
            snprintf(to, sizeof to, "%s.%d", log_path, i);
            rename(from, to);
        }
        close(log_fd);
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    } else if (ftruncate(log_fd, 0) < 0) {
        return;
    }
    log_size = 0;
}

/* One json-file entry per line; a trailing partial line becomes its own entry, as Docker does. */
static void log_output(int stream, const char *data, size_t len) {
    static char line[3 * 65536 + 256];
    char now[64];
    if (log_fd < 0) return;
    rfc3339nano(now, sizeof now);
    size_t start = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && data[end] != '\n') end++;
        if (end < len) end++; /* include the newline */
        size_t o = 0;
        o += (size_t)sprintf(line + o, "{\"log\":\"");
        for (size_t i = start; i < end; i++) {
            unsigned char c = (unsigned char)data[i];
            if (c == '"' || c == '\\') { line[o++] = '\\'; line[o++] = (char)c; }
            else if (c == '\n') { line[o++] = '\\'; line[o++] = 'n'; }
            else if (c == '\r') { line[o++] = '\\'; line[o++] = 'r'; }
            else if (c == '\t') { line[o++] = '\\'; line[o++] = 't'; }
            else if (c < 0x20 || c == 0x7f) o += (size_t)sprintf(line + o, "\\u%04x", c);
            else line[o++] = (char)c;
        }
        o += (size_t)sprintf(line + o, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n",
                             stream == F_STDERR ? "stderr" : "stdout", now);
        if (write_all(log_fd, line, o) < 0) { /* disk full: keep serving clients */ }
        log_size += (long long)o;
        if (log_max_size > 0 && log_size >= log_max_size) rotate_log();
        start = end;
    }
}

static int send_frame(int fd, int type, const void *data, uint32_t len) {
    unsigned char hdr[8] = {(unsigned char)type, 0, 0, 0,
                            (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    if (send(fd, hdr, 8, MSG_NOSIGNAL) != 8) return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (uint32_t)n;
    }
    return 0;
}

static void drop_client(int i) {
    close(clients[i]);
    clients[i] = -1;
    client_flags[i] = 0;
}

static void broadcast(int stream, const char *data, size_t len) {
    int bit = stream == F_STDERR ? 2 : 1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] >= 0 && (client_flags[i] & bit))
            if (send_frame(clients[i], stream, data, (uint32_t)len) < 0) drop_client(i);
}

static int client_frame(int i);
static void add_client(int fd);

/* Accept every pending client (the listening socket is non-blocking): all of them must be
 * registered before any output that is already waiting gets pumped. */
static void accept_clients(void) {
    for (int n = 0; n < MAX_CLIENTS; n++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) return;
        add_client(fd);
    }
}

static void add_client(int fd) {
    struct timeval tv = {10, 0}; /* a client that stops reading must not stall the container */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] < 0) {
            clients[i] = fd;
            client_flags[i] = 0;
            /* Every client opens with HELLO: take it now, so no output that is already
             * waiting in the pipes can slip past a client that asked for it. */
            struct timeval rtv = {2, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv);
            client_frame(i);
            if (clients[i] >= 0) {
                struct timeval none = {0, 0};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
            }
            return;
        }
    close(fd);
}

static int recv_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n == 0) return -1;
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

/* Handle one frame from client i; returns the frame type or -1 when the client is gone. */
static int client_frame(int i) {
    unsigned char hdr[8];
    static char payload[65536];
    if (recv_all(clients[i], hdr, 8) < 0) { drop_client(i); return -1; }
    uint32_t len = ((uint32_t)hdr[4] << 24) | ((uint32_t)hdr[5] << 16) | ((uint32_t)hdr[6] << 8) | hdr[7];
    if (len > sizeof payload || recv_all(clients[i], payload, len) < 0) { drop_client(i); return -1; }
    switch (hdr[0]) {
    case F_STDIN:
        if (stdin_fd >= 0 && write_all(stdin_fd, payload, len) < 0 && !tty) {
            close(stdin_fd);
            stdin_fd = -1;
        }
        break;
    case F_CLOSE_STDIN:
        if (stdin_fd >= 0 && !tty) { close(stdin_fd); stdin_fd = -1; }
        break;
    case F_RESIZE: {
        unsigned rows = 0, cols = 0;
        payload[len < sizeof payload ? len : sizeof payload - 1] = 0;
        if (master_fd >= 0 && sscanf(payload, "%u %u", &rows, &cols) == 2) {
            struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(master_fd, TIOCSWINSZ, &ws);
        }
        break;
    }
    case F_HELLO:
        client_flags[i] = len > 0 ? (unsigned char)payload[0] : 0;
        break;
    default:
        break;
    }
    return hdr[0];
}

static int listen_unix(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) die("socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind %s: %s", path, strerror(errno));
    chmod(path, 0600);
    if (listen(fd, 16) < 0) die("listen %s: %s", path, strerror(errno));
    return fd;
}

/* Receive the pty master the runtime sends over the console socket. */
static int receive_master(int console_listen, pid_t runtime_pid) {
    for (;;) {
        struct pollfd p = {.fd = console_listen, .events = POLLIN};
        int r = poll(&p, 1, 100);
        if (r > 0) break;
        int st;
        if (waitpid(runtime_pid, &st, WNOHANG) == runtime_pid) return -2 - (WIFEXITED(st) ? WEXITSTATUS(st) : 1);
    }
    int conn = accept4(console_listen, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) die("accept console socket: %s", strerror(errno));
    char buf[256];
    char ctrl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl};
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) < 0) die("receive pty master: %s", strerror(errno));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) die("receive pty master: no file descriptor sent");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    close(conn);
    return fd;
}

static void read_file(const char *path, char *buf, size_t size) {
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
}

static void drain_nonblocking(int fd, char *buf, size_t size, size_t *used) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (*used < size - 1) {
        ssize_t n = read(fd, buf + *used, size - 1 - *used);
        if (n <= 0) break;
        *used += (size_t)n;
    }
    buf[*used] = 0;
}

static pid_t run_runtime(int console_listen_needed, pid_t *container_pid) {
    /* absolute: runc changes into the bundle directory before it dials the console socket */
    static char pid_file[4096], console_path[4096];
    snprintf(pid_file, sizeof pid_file, "%s/pid", dir);
    snprintf(console_path, sizeof console_path, "%s/console.sock", dir);
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, console_listen = -1;
    if (console_listen_needed) {
        console_listen = listen_unix(console_path);
    } else {
        if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
        if (open_stdin && pipe2(in_pipe, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    }
    unlink(pid_file);
    const char *argv[64];
    int a = 0;
    argv[a++] = runtime;
    if (runtime_root) { argv[a++] = "--root"; argv[a++] = runtime_root; }
    for (int i = 0; i < n_runtime_args; i++) argv[a++] = runtime_args[i];
    if (exec_process) {
        argv[a++] = "exec"; argv[a++] = "--process"; argv[a++] = exec_process; argv[a++] = "--detach";
    } else {
        argv[a++] = "create"; argv[a++] = "--bundle"; argv[a++] = bundle;
    }
    argv[a++] = "--pid-file"; argv[a++] = pid_file;
    if (console_listen_needed) { argv[a++] = "--console-socket"; argv[a++] = console_path; }
    argv[a++] = id;
    argv[a] = NULL;

    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (console_listen_needed) {
            int null = open("/dev/null", O_RDWR);
            int errf = open("runtime.err", O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(null, 0); dup2(null, 1); dup2(errf >= 0 ? errf : null, 2);
        } else {
            int null = open("/dev/null", O_RDWR);
            dup2(open_stdin ? in_pipe[0] : null, 0);
            dup2(out_pipe[1], 1);
            dup2(err_pipe[1], 2);
        }
        execv(runtime, (char *const *)argv);
        dprintf(2, "exec %s: %s\n", runtime, strerror(errno));
        _exit(127);
    }
    int st = 0;
    if (console_listen_needed) {
        int m = receive_master(console_listen, pid);
        if (m <= -2) { st = (-(m + 2)) << 8; goto failed; }
        master_fd = m;
        close(console_listen);
        unlink(console_path);
        if (open_stdin) stdin_fd = master_fd;
    } else {
        if (open_stdin) { close(in_pipe[0]); stdin_fd = in_pipe[1]; }
        close(out_pipe[1]); close(err_pipe[1]);
        out_fd = out_pipe[0]; err_fd = err_pipe[0];
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        char buf[64];
        for (int tries = 0; tries < 40; tries++) { /* a runtime may still be renaming it in place */
            read_file(pid_file, buf, sizeof buf);
            if (atoi(buf) > 0) break;
            usleep(25000);
        }
        *container_pid = (pid_t)atoi(buf);
        if (*container_pid <= 0) die("%s wrote no pid to %s", runtime, pid_file);
        return pid;
    }
failed:;
    static char msg[8192];
    size_t used = 0;
    if (console_listen_needed) read_file("runtime.err", msg, sizeof msg);
    else {
        drain_nonblocking(err_pipe[0], msg, sizeof msg, &used);
        drain_nonblocking(out_pipe[0], msg, sizeof msg, &used);
    }
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
    die("%s %s failed (%s %d): %s", runtime, exec_process ? "exec" : "create",
        WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
        n ? msg : "no error output");
    return -1;
}

static void write_exit_file(int code, int signaled) {
    char now[64], buf[256];
    rfc3339nano(now, sizeof now);
    int n = snprintf(buf, sizeof buf, "{\"exit_code\":%d,\"signaled\":%s,\"finished_at\":\"%s\"}\n",
                     code, signaled ? "true" : "false", now);
    /* temp + rename: skiffd never reads half a record. No fsync: the record only has to
     * outlive skiffd (a kill -9 keeps the page cache), not the machine; it lives under the
     * exec-root (/run, a tmpfs) and after a reboot there is no shim and no container left. */
    int fd = open("exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_all(fd, buf, (size_t)n);
    close(fd);
    rename("exit.tmp", "exit");
}

/* Forward output from fd; returns 0 at EOF. */
static int pump(int fd, int stream) {
    static char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) return 0; /* EOF, or EIO on a pty master once the slave side is closed */
    log_output(stream, buf, (size_t)n);
    broadcast(stream, buf, (size_t)n);
    return 1;
}

static void usage(void) {
    fprintf(stderr, "usage: skiff-shim --runtime PATH [--runtime-root DIR] [--runtime-arg ARG]... --id ID\n"
                    "       --dir DIR (--bundle DIR | --exec-process FILE) [--log FILE] [--tty] [--stdin]\n"
                    "       [--wait-start] [--status-fd N] [--log-max-size BYTES] [--log-max-files N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tty")) tty = 1;
        else if (!strcmp(a, "--stdin")) open_stdin = 1;
        else if (!strcmp(a, "--wait-start")) wait_start = 1;
        else if (!v) usage();
        else if (!strcmp(a, "--runtime")) runtime = v, i++;
        else if (!strcmp(a, "--runtime-root")) runtime_root = v, i++;
        else if (!strcmp(a, "--runtime-arg") && n_runtime_args < MAX_RUNTIME_ARGS) runtime_args[n_runtime_args++] = v, i++;
        else if (!strcmp(a, "--id")) id = v, i++;
        else if (!strcmp(a, "--dir")) dir = v, i++;
        else if (!strcmp(a, "--bundle")) bundle = v, i++;
        else if (!strcmp(a, "--exec-process")) exec_process = v, i++;
        else if (!strcmp(a, "--log")) log_path = v, i++;
        else if (!strcmp(a, "--log-max-size")) log_max_size = atoll(v), i++;
        else if (!strcmp(a, "--log-max-files")) log_max_files = atoi(v) > 0 ? atoi(v) : 1, i++;
        else if (!strcmp(a, "--status-fd")) status_fd = atoi(v), i++;
        else usage();
    }
    if (!runtime || !id || !dir || (!bundle == !exec_process)) usage();
    if (status_fd >= 0) fcntl(status_fd, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i] = -1;

    /* Detach: the first process returns at once so skiffd can reap it; the shim lives on. */
    pid_t child = fork();
    if (child < 0) die("fork: %s", strerror(errno));
    if (child > 0) _exit(0);
    setsid();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    if (chdir(dir) < 0) die("chdir %s: %s", dir, strerror(errno));
    int null = open("/dev/null", O_RDWR);
    int shim_log = open("shim.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    dup2(null, 0); dup2(null, 1); dup2(shim_log >= 0 ? shim_log : null, 2);
    close(null);
    if (shim_log > 2) close(shim_log);
    if (log_path) {
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log_fd < 0) die("open log %s: %s", log_path, strerror(errno));
        struct stat st;
        if (fstat(log_fd, &st) == 0) log_size = st.st_size;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("signalfd: %s", strerror(errno));

    listen_fd = listen_unix("attach.sock");
    status("ready");

    if (wait_start) {
        int started = 0;
        while (!started) {
            struct pollfd p[MAX_CLIENTS + 1];
            int idx[MAX_CLIENTS + 1], n = 0;
            p[n].fd = listen_fd; p[n].events = POLLIN; idx[n++] = -1;
            for (int i = 0; i < MAX_CLIENTS; i++)
                if (clients[i] >= 0) { p[n].fd = clients[i]; p[n].events = POLLIN; idx[n++] = i; }
            if (poll(p, (nfds_t)n, 60000) == 0) die("nobody started the process within 60s");
            if (p[0].revents) accept_clients();
            for (int k = 1; k < n; k++)
                if (p[k].revents && clients[idx[k]] >= 0 && client_frame(idx[k]) == F_START) started = 1;
        }
    }

    pid_t container_pid = 0;
    run_runtime(tty, &container_pid);
    status("pid %d", container_pid);
    if (status_fd >= 0) { close(status_fd); status_fd = -1; }

    int exited = 0, exit_code = 0, signaled = 0;
    struct timespec exit_seen = {0, 0};
    for (;;) {
        struct pollfd p[MAX_CLIENTS + 5];
        int idx[MAX_CLIENTS + 5], n = 0;
        p[n].fd = sfd; p[n].events = POLLIN; idx[n++] = -10;
        p[n].fd = listen_fd; p[n].events = POLLIN; idx[n++] = -11;
        if (out_fd >= 0) { p[n].fd = out_fd; p[n].events = POLLIN; idx[n++] = -12; }
        if (err_fd >= 0) { p[n].fd = err_fd; p[n].events = POLLIN; idx[n++] = -13; }
        if (master_fd >= 0) { p[n].fd = master_fd; p[n].events = POLLIN; idx[n++] = -14; }
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i] >= 0) { p[n].fd = clients[i]; p[n].events = POLLIN; idx[n++] = i; }
        int outputs_open = out_fd >= 0 || err_fd >= 0 || master_fd >= 0;
        if (exited) {
            /* After the exit, drain what is buffered; processes that escaped the reaping and
             * still hold the pipes must not keep the exit from being reported. */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!outputs_open || now.tv_sec - exit_seen.tv_sec >= 2) break;
        }
        if (poll(p, (nfds_t)n, exited ? 200 : -1) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            if (!p[k].revents) continue;
            switch (idx[k]) {
            case -10: {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) > 0) {}
                int st;
                pid_t w;
                while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                    if (w == container_pid) {
                        exited = 1;
                        signaled = WIFSIGNALED(st);
                        exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                        clock_gettime(CLOCK_MONOTONIC, &exit_seen);
                    }
                }
                break;
            }
            case -11: accept_clients(); break;
            case -12: if (!pump(out_fd, F_STDOUT)) { close(out_fd); out_fd = -1; } break;
            case -13: if (!pump(err_fd, F_STDERR)) { close(err_fd); err_fd = -1; } break;
            case -14: if (!pump(master_fd, F_STDOUT)) { close(master_fd); master_fd = -1; if (stdin_fd >= 0 && tty) stdin_fd = -1; } break;
            default: if (clients[idx[k]] >= 0) client_frame(idx[k]); break;
            }
        }
    }
    write_exit_file(exit_code, signaled);
    char code[16];
    int len = snprintf(code, sizeof code, "%d", exit_code);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] >= 0) { send_frame(clients[i], F_EXIT, code, (uint32_t)len); drop_client(i); }
    unlink("attach.sock");
    return 0;
}
