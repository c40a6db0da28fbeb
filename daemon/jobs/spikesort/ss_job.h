/*
 * ss_job.h — the "spikesort" job type (Kilosort-style spike sorting of a raw
 * int16 recording into a phy folder). Registered in daemon/jobs/registry.c.
 */
#ifndef SS_JOB_H
#define SS_JOB_H

#include "job_type.h"

extern const struct job_type ss_job_type;

#endif
