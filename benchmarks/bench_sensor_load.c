/* Syscall load generator for bench_sensor.py, in C: the same modes and protocol as bench_sensor_load.py,
 * with ~10x less user-space time per iteration, so that it can offer rates beyond what the sensor keeps up
 * with (a Python generator saturates its own core first). bench_sensor.py compiles it with cc/clang.
 *
 *   bench_sensor_load open|exec|getppid [--rate R] [--seconds S] [--count N]
 * prints "ready", waits for a line on stdin, runs, prints {"iterations": n, "seconds": s}.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void step(int mode)
{
	if (mode == 0) {
		int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
	} else if (mode == 1) {
		pid_t pid = fork();
		if (pid == 0) {
			char *argv[] = {"/bin/true", NULL};
			execv(argv[0], argv);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	} else {
		syscall(SYS_getppid);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int mode = !strcmp(argv[1], "open") ? 0 : !strcmp(argv[1], "exec") ? 1 : 2;
	double rate = 0, seconds = 0;
	long count = 0;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--count"))
			count = atol(argv[i + 1]);
	}
	int chunk = mode == 1 ? 1 : 64;
	char line[64];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	long done = 0;
	double start = now();
	if (count && rate == 0) {
		for (long i = 0; i < count; i++)
			step(mode);
		done = count;
	} else {
		double end = start + seconds;
		for (;;) {
			double t = now();
			if (t >= end || (count && done >= count))
				break;
			if (rate > 0) {
				double ahead = start + done / rate - t;
				if (ahead > 0.0005) {
					struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
					nanosleep(&ts, NULL);
				}
			}
			for (int i = 0; i < chunk; i++)
				step(mode);
			done += chunk;
		}
	}
	printf("{\"iterations\": %ld, \"seconds\": %.6f}\n", done, now() - start);
	return 0;
}
