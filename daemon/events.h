/*
 * events.h — a job's state on the events socket (net_publish): id, state,
 * progress, stage, eta_s. Lossy hints for waiting clients; the truth is
 * always a status request. Loop thread only.
 */
#ifndef EVENTS_H
#define EVENTS_H

#include <stdint.h>

struct daemon;
struct job_row;

/* Publish the job's current state. */
void events_publish(struct daemon *d, const struct job_row *row);
/* Re-read the row and publish it (nothing when it cannot be read). */
void events_publish_id(struct daemon *d, int64_t id);
/* Seconds to finish by linear extrapolation of progress since the start;
 * -1 when unknown (queued, or under 1 % done), 0 once final. The figure
 * status replies and events carry. */
double events_eta_s(const struct job_row *row);

#endif
