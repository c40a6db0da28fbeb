/*
 * recover.h — `neuroqd --recover`: the job store rebuilt from the spool.
 * A damaged database (store_verify) is moved aside, never deleted, to
 * <state_dir>/damaged-<UTC time>/; a whole one is kept and only gets rows
 * for the job dirs it lost (a rolled-back or restored database). Each
 * jobs/<id> with a readable `job` file and params.mp becomes a row of its
 * own id: out/ there → DONE, a valid `error` → FAILED (CANCELED for
 * ECANCELED) with its code and message, otherwise QUEUED again. What cannot
 * be read goes to <spool root>/recovered-aside/<id>. The next id is then
 * past every dir.
 */
#ifndef RECOVER_H
#define RECOVER_H

#include <stdio.h>

struct recover_counts {
	int kept;                           /* rows the database still had */
	int done, failed, canceled, queued; /* rows rebuilt */
	int aside;                          /* dirs set aside */
	int damaged;                        /* 1: the database was moved */
};

/* The job dirs are <spool_root>/jobs/<id> (the state dir, or under
 * executor = slurm the shared slurm_spool_dir: config_spool_root), and
 * what cannot be read goes to <spool_root>/recovered-aside/ (the same
 * filesystem). 0 (a summary on out), or 1 with the reason on out. */
int recover_state_dir(const char *state_dir, const char *spool_root, FILE *out,
                      struct recover_counts *c);

#endif
