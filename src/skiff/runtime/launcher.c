/* skiff-runtime, the installed command: starts the cgroup attach's grace period, for `create`
 * and `run` unshares the pid namespace for its children, makes `run` a child subreaper, then
 * execs the Python runtime (`python3 -IS skiff-runtime.py ARGS...`,
 * paths fixed at build time by scripts/install.sh).
 *
 * Why (src/skiff/runtime/warmup.py has the whole story): the first write to a cgroup.procs
 * file waits for an RCU grace period, 7-20 ms here, and `create`, `run` and `exec` make one
 * ~10 ms after they start. Python can begin that wait no sooner than its interpreter is up
 * (~6 ms); this binary begins it at once, in a child that writes its own pid into the cgroup
 * it is already in (which moves nothing), and again every 2 ms, until the Python side says
 * the real attach is done. The child holds none of the caller's file descriptors.
 * SKIFF_RUNTIME_NO_CGROUP_PRIMING=1 turns it off, as it does the Python side's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUBREAPER_ENV "_SKIFF_RUNTIME_SUBREAPER"
#define PRIMER_ENV "_SKIFF_RUNTIME_PRIMER"
#define HOME_PIDNS_ENV "_SKIFF_RUNTIME_HOME_PIDNS"

#ifndef SKIFF_PYTHON
#error "build with -DSKIFF_PYTHON=\"/path/to/python3\" -DSKIFF_SCRIPT=\"/path/to/skiff-runtime.py\""
#endif

/* The verb: the first argument that is neither a global flag nor the value of one (runc's
 * global flags that take a value: --root, --log, --log-format, --rootless, --criu). */
static const char *verb_of(int argc, char **argv) {
    static const char *const with_value[] = {"root", "log", "log-format", "rootless", "criu"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--")) return i + 1 < argc ? argv[i + 1] : NULL;
        if (arg[0] != '-' || !arg[1]) return arg;
        while (*arg == '-') arg++;
        if (strchr(arg, '=')) continue;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            if (!strcmp(arg, with_value[k])) {
                i++;
                break;
            }
    }
    return NULL;
}

static ssize_t read_all(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t used = 0;
    while (used < size - 1) {
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = 0;
    return (ssize_t)used;
}

/* Whether the cgroup.procs file at `path` lists `pid` (/sys/fs/cgroup may be another view). */
static int lists(const char *path, const char *pid) {
    static char procs[1 << 20];
    if (read_all(path, procs, sizeof procs) < 0) return 0;
    size_t len = strlen(pid);
    for (char *line = procs; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n == len && !strncmp(line, pid, len)) return 1;
        if (!end) break;
        line = end + 1;
    }
    return 0;
}

/* One no-op attach: this process's pid into the first cgroup.procs that lists it; the path
 * written goes to `written` (empty when none could be). */
static void prime(char *written, size_t size) {
    char pid[32], self[8192], path[4096];
    written[0] = 0;
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (read_all("/proc/self/cgroup", self, sizeof self) < 0) return;
    for (char *line = strtok(self, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *controllers = c1 + 1, *cgroup = c2 + 1;
        if (!strncmp(controllers, "name=", 5)) controllers += 5;
        const char *bases[2] = {NULL, NULL};
        char base[512];
        if (*controllers) {
            snprintf(base, sizeof base, "/sys/fs/cgroup/%s", controllers);
            bases[0] = base;
        } else {
            bases[0] = "/sys/fs/cgroup/unified";
            bases[1] = "/sys/fs/cgroup";
        }
        for (int b = 0; b < 2 && bases[b]; b++) {
            size_t len = strlen(cgroup);
            snprintf(path, sizeof path, "%s%s%scgroup.procs", bases[b], cgroup,
                     len && cgroup[len - 1] == '/' ? "" : "/");
            if (!lists(path, pid)) continue;
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t n = write(fd, pid, strlen(pid)); /* waits for the grace period */
            close(fd);
            if (n > 0) {
                snprintf(written, size, "%s", path);
                return;
            }
        }
    }
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The priming child: one attach (it waits for the grace period), then one every
 * PRIMING_INTERVAL_MS, which keeps the fast state, until `stop` (a pipe's read end) reaches
 * end-of-file — the runtime closed its end once the real attach was done, or exited — or
 * PRIMING_MS have passed. */
#define PRIMING_INTERVAL_MS 2
#define PRIMING_MS 500
static void keep_primed(int stop) {
    char path[4096], pid[32];
    long long deadline = now_ms() + PRIMING_MS;
    prime(path, sizeof path);
    if (!path[0]) return;
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    while (now_ms() < deadline) {
        struct pollfd p = {.fd = stop, .events = POLLIN};
        int r = poll(&p, 1, PRIMING_INTERVAL_MS);
        if (r != 0) return; /* end-of-file (or an error): the runtime is done with us */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return;
        ssize_t n = write(fd, pid, strlen(pid));
        close(fd);
        if (n <= 0) return;
    }
}

/* The priming runs in a child of ours (the runtime's, after the exec): not waiting for a
 * middle process to fork it and exit saves ~1 ms, and doing all of it there spares the
 * runtime a thread. PRIMER_ENV tells the Python side "<pid>:<fd>": closing fd stops it, and
 * the runtime reaps it (warmup.py); if the runtime exits first, its end closes with it and
 * the child is an orphan like any other, reaped by init or the caller's subreaper. */
static void start_priming(void) {
    int stop[2];
    if (pipe(stop) < 0) return;
    pid_t pid = fork();
    if (pid < 0) {
        close(stop[0]);
        close(stop[1]);
        return;
    }
    if (pid == 0) {
        /* Hold nothing of the caller's: a reader of our stdout/stderr sees EOF when the
         * runtime exits, not when the priming ends. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        if (dup2(stop[0], 3) < 0) _exit(0);
        syscall(SYS_close_range, 4U, ~0U, 0U);
        keep_primed(3);
        _exit(0);
    }
    close(stop[0]);
    char value[64];
    snprintf(value, sizeof value, "%d:%d", (int)pid, stop[1]);
    setenv(PRIMER_ENV, value, 1);
}

int main(int argc, char **argv) {
    const char *verb = verb_of(argc, argv);
    int attaches = verb && (!strcmp(verb, "create") || !strcmp(verb, "run") || !strcmp(verb, "exec"));
    unsetenv(PRIMER_ENV);
    if (attaches && !getenv("SKIFF_RUNTIME_NO_CGROUP_PRIMING"))
        start_priming();
    /* `create` and `run`: the runtime's first child (prefork.py) is to be pid 1 of the
     * container's new pid namespace. unshare(CLONE_NEWPID) moves only children, and here
     * (after the priming fork) it needs no C library binding on the Python side; an fd of
     * our own namespace goes along, for the later children the runtime may have. */
    unsetenv(HOME_PIDNS_ENV);
    if (verb && (!strcmp(verb, "create") || !strcmp(verb, "run")) &&
        !getenv("SKIFF_RUNTIME_NO_PRE_INIT")) {
        int home = open("/proc/self/ns/pid", O_RDONLY); /* inherited by the runtime */
        if (home >= 0 && unshare(CLONE_NEWPID) == 0) {
            char value[32];
            snprintf(value, sizeof value, "%d", home);
            setenv(HOME_PIDNS_ENV, value, 1);
        } else if (home >= 0) {
            close(home);
        }
    }
    /* `run` waits for the container's init, which the intermediate process leaves behind:
     * the runtime must be a child subreaper before that. Done here (after the priming fork,
     * whose orphan must not become ours), the Python side needs no C library binding for it
     * (src/skiff/runtime/prefork.py). Harmless for `run --detach`: once we exit, orphans go
     * on to our own reaper, as they would have. */
    unsetenv(SUBREAPER_ENV);
    if (verb && !strcmp(verb, "run") && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
        setenv(SUBREAPER_ENV, "1", 1);
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args) return 1;
    args[0] = SKIFF_PYTHON;
    args[1] = "-IS";
    args[2] = SKIFF_SCRIPT;
    for (int i = 1; i < argc; i++) args[i + 2] = argv[i];
    execv(SKIFF_PYTHON, args);
    fprintf(stderr, "skiff-runtime: exec %s: %s\n", SKIFF_PYTHON, strerror(errno));
    return 1;
}
