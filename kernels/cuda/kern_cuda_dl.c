/*
 * kern_cuda_dl.c — the cuda entry points of kern.h in a build with CUDA:
 * they dlopen() the backend module (libnq_kern_cuda.so) on first use, so a
 * process that never asks for a cuda device never maps the CUDA libraries
 * (about 0.1 s and 260 MB per worker start otherwise).
 *
 * Search order: the directory of the executable, its ../lib/neuroq,
 * $NEUROQ_LIB_DIR, the install lib dir, then the build tree (tests and
 * bench run from there).
 * Not found: 0 devices, and kern_cuda_open() says why on stderr.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kern.h"
#include "kern_cuda_mod.h"
#include "kern_impl.h"
#include "nq_error.h"

#ifndef NQ_KERN_INSTALL_LIBDIR
#define NQ_KERN_INSTALL_LIBDIR ""
#endif
#ifndef NQ_KERN_BUILD_LIBDIR
#define NQ_KERN_BUILD_LIBDIR ""
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static kern_cudamod_count_fn mod_count;
static kern_cudamod_open_fn mod_open;
static char why[768];

static void *
try_dir(const char *dir, size_t len)
{
	char path[PATH_MAX];
	void *h;

	if (len == 0)
		return NULL;
	if ((size_t) snprintf(path, sizeof(path), "%.*s/%s", (int) len, dir,
	                      KERN_CUDA_MODULE) >= sizeof(path))
		return NULL;
	if (access(path, F_OK) != 0)
		return NULL;
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) /* there but unusable (missing libcublas...) */
		snprintf(why, sizeof(why), "%s", dlerror());
	return h;
}

static void *
find_module(void)
{
	const char *dirs[3] = {getenv("NEUROQ_LIB_DIR"), NQ_KERN_INSTALL_LIBDIR,
	                       NQ_KERN_BUILD_LIBDIR};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	void *h = NULL;

	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL)
			h = try_dir(exe, (size_t) (slash - exe));
		/* an installed tree moved elsewhere: bin/../lib/neuroq */
		if (h == NULL && slash != NULL &&
		    (size_t) (slash - exe) + 16 < sizeof(exe)) {
			strcpy(slash, "/../lib/neuroq");
			h = try_dir(exe, strlen(exe));
		}
	}
	for (int i = 0; h == NULL && i < 3; i++)
		if (dirs[i] != NULL)
			h = try_dir(dirs[i], strlen(dirs[i]));
	return h;
}

static void
load(void)
{
	void *h = find_module();

	if (h == NULL) {
		if (why[0] == '\0')
			snprintf(why, sizeof(why),
			         "%s not found next to the executable, in "
			         "$NEUROQ_LIB_DIR or in %s",
			         KERN_CUDA_MODULE, NQ_KERN_INSTALL_LIBDIR);
		return;
	}
	*(void **) &mod_count = dlsym(h, "kern_cudamod_device_count");
	*(void **) &mod_open = dlsym(h, "kern_cudamod_open");
	if (mod_count == NULL || mod_open == NULL) {
		snprintf(why, sizeof(why), "%s lacks its entry points",
		         KERN_CUDA_MODULE);
		mod_count = NULL;
		mod_open = NULL;
		dlclose(h);
	}
	/* otherwise kept loaded for the life of the process */
}

int
kern_cuda_device_count(void)
{
	pthread_once(&once, load);
	return mod_count != NULL ? mod_count() : 0;
}

int
kern_cuda_open(struct kern_backend *kb, int device)
{
	pthread_once(&once, load);
	if (mod_open == NULL) {
		if (kb != NULL)
			memset(kb, 0, sizeof(*kb));
		fprintf(stderr, "kern cuda: backend unavailable: %s\n", why);
		return kb == NULL ? NQ_EBADPARAM : NQ_ENODEV;
	}
	return mod_open(kb, device);
}
