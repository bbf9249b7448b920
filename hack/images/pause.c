/*
 * The pod sandbox process: it holds the pod's namespaces open for as long as
 * the pod lives, reaps orphaned children (it is PID 1 when the pod shares
 * its PID namespace), and exits cleanly when the runtime stops the pod.
 * Built statically so its image needs nothing but this one file.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
	(void)signo;
	_exit(0);
}

static void reap(int signo) {
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

static int handle(int signo, void (*handler)(int), int flags) {
	struct sigaction action = {0};
	action.sa_handler = handler;
	action.sa_flags = flags;
	sigemptyset(&action.sa_mask);
	return sigaction(signo, &action, NULL);
}

int main(void) {
	if (handle(SIGINT, stop, 0) < 0 || handle(SIGTERM, stop, 0) < 0 ||
	    handle(SIGCHLD, reap, SA_NOCLDSTOP) < 0) {
		return 2;
	}
	for (;;) {
		pause();
	}
	return 0;
}
