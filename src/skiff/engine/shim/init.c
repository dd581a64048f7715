/*
 * skiff-init: a minimal pid 1 for `--init` containers (bind-mounted as /sbin/docker-init).
 *
 * usage: skiff-init -- COMMAND [ARG]...
 * Runs COMMAND as its child in its own process group on the container's terminal, forwards
 * the signals a container receives to it, reaps every zombie, and exits with the command's
 * status (128 + signal number when it was killed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (first < argc && !strcmp(argv[first], "--")) first++;
    if (first >= argc) {
        fprintf(stderr, "usage: skiff-init -- COMMAND [ARG]...\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        perror("skiff-init: fork");
        return 1;
    }
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        if (isatty(0)) {
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(0, getpid());
            signal(SIGTTOU, SIG_DFL);
        }
        execvp(argv[first], argv + first);
        fprintf(stderr, "skiff-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t si;
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&all, &si, &tick);
        if (sig > 0 && sig != SIGCHLD) kill(child, sig);
        int status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
            if (w == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
}
