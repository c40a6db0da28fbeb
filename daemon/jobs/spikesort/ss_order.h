/*
 * ss_order.h — gap-free template and cluster ids for the phy folder.
 */
#ifndef SS_ORDER_H
#define SS_ORDER_H

#include "ss.h"

/*
 * Renumbers res's templates (a permutation of 0..K-1, applied to templ,
 * clust, templates, similar, the per-cluster arrays and the merges) so the
 * clusters with spikes are 0..U-1, each with the id of its smallest
 * template with spikes, and the templates with spikes 0..V-1 (U ≤ V ≤ K).
 * The identity when no id is skipped. 0, NQ_ENOMEM, or NQ_EINTERNAL for a
 * spike whose template or cluster is not in 0..K-1.
 */
int ss_order_ids(struct ss_result *res);

#endif
