/* peakrss CMD [ARG...]: runs CMD and prints "peak_rss_kib N" after its output: CMD's peak resident
 * set, from wait4. Why a launcher: Linux keeps a process's RSS high-water mark across fork and exec,
 * so ru_maxrss of a command the Python harness starts is at least the harness's own (~60 MiB: /bin/true
 * reports 71,920 KiB that way). This process is small, and its child inherits only its mark (~1 MiB).
 * Exits with CMD's status (128 + the signal that killed it). */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: peakrss CMD [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("peakrss: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("peakrss: wait4");
		return 2;
	}
	printf("peak_rss_kib %ld\n", ru.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
