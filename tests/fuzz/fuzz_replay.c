/* fuzz_replay.c — runs every file of a corpus directory through the fuzz
 * check (ctest passes tests/fuzz/corpus). Files named valid-* must decode,
 * bad-* must be rejected. Exit 1 if any input breaks an invariant or its
 * name's promise, 2 on bad usage or an empty corpus. */
#include "fuzz_decode.h"

#include "nq_value.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
replay_file(const char *path, int *nbad)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long sz;
	char why[256];
	const char *base;
	struct nq_value v;
	int rc;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		if (f != NULL)
			fclose(f);
		fprintf(stderr, "%s: cannot read\n", path);
		return -1;
	}
	buf = malloc((size_t) sz + 1);
	if (buf == NULL || fread(buf, 1, (size_t) sz, f) != (size_t) sz) {
		free(buf);
		fclose(f);
		fprintf(stderr, "%s: cannot read\n", path);
		return -1;
	}
	fclose(f);
	if (nq_fuzz_one(buf, (size_t) sz, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s: %s\n", path, why);
		(*nbad)++;
	}
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	rc = nq_decode(buf, (size_t) sz, &v, why, sizeof(why));
	nq_value_free(&v);
	if (strncmp(base, "valid-", 6) == 0 && rc != 0) {
		fprintf(stderr, "%s: should decode, got %d: %s\n", path, rc,
		        why);
		(*nbad)++;
	} else if (strncmp(base, "bad-", 4) == 0 && rc == 0) {
		fprintf(stderr, "%s: should be rejected, decoded\n", path);
		(*nbad)++;
	}
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	int nfiles = 0, nbad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: fuzz_replay DIR|FILE...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (d == NULL) {
			if (replay_file(argv[i], &nbad) != 0)
				return 2;
			nfiles++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i],
			         e->d_name);
			if (replay_file(path, &nbad) != 0) {
				closedir(d);
				return 2;
			}
			nfiles++;
		}
		closedir(d);
	}
	printf("fuzz_replay: %d inputs, %d failures\n", nfiles, nbad);
	if (nfiles == 0)
		return 2;
	return nbad ? 1 : 0;
}
