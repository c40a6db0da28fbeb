/*
 * probe.h — keeps the devices' free-memory figures current: `devices`
 * requests start a background `neuroq-worker probe` (child.h; figures
 * applied when it exits cleanly) at most every PROBE_MIN_INTERVAL_MS; the loop
 * thread never waits for it. The cpu's figure comes from /proc/meminfo at
 * once.
 */
#ifndef PROBE_H
#define PROBE_H

struct daemon;

#define PROBE_MIN_INTERVAL_MS 5000
#define PROBE_TIMEOUT_MS      60000 /* CUDA start-up can be slow */

/* Refresh the cpu now; start a GPU probe unless one runs or ran less than
 * PROBE_MIN_INTERVAL_MS ago (or there is no GPU). Never blocks. */
void probe_refresh(struct daemon *d);
/* Kill a running probe and close its handles (run the loop once more). */
void probe_close(struct daemon *d);

#endif
