/*
 * ss_order.c — renumbers the final templates so that the ids the spikes
 * use are 0..n-1 without gaps, for spike_templates and spike_clusters
 * alike: phylib's load_model warns about "unreferenced clusters" when the
 * ids in either file skip a number (a merged-away cluster, a template left
 * without spikes).
 *
 * Only a permutation of the template ids: every per-template array keeps
 * its length K. Each cluster takes the id of its representative template
 * (its smallest template id with spikes of its own), and the new order is
 * the representatives, then the other templates with spikes, then the
 * templates without spikes (each group in the old order). So the clusters
 * are 0..U-1 and the used templates 0..V-1; when nothing was merged or
 * dropped the permutation is the identity.
 */
#include "ss_order.h"

#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

static int
permute_rows(void *a, size_t row, int K, const int *newid)
{
	char *src = a, *tmp;

	if (K == 0 || row == 0)
		return 0;
	tmp = malloc(row * (size_t) K);
	if (tmp == NULL)
		return NQ_ENOMEM;
	for (int k = 0; k < K; k++)
		memcpy(tmp + row * (size_t) newid[k], src + row * (size_t) k,
		       row);
	memcpy(src, tmp, row * (size_t) K);
	free(tmp);
	return 0;
}

int
ss_order_ids(struct ss_result *res)
{
	int K = res->K, next = 0, rc = NQ_ENOMEM, ident = 1;
	int64_t n = res->n_spikes;
	int64_t *own = calloc((size_t) K + 1, sizeof(int64_t));
	int *rep = malloc(sizeof(int) * ((size_t) K + 1));
	int *newid = malloc(sizeof(int) * ((size_t) K + 1));
	float *sim = NULL;

	if (!own || !rep || !newid)
		goto out;
	for (int k = 0; k < K; k++) {
		rep[k] = -1;
		newid[k] = -1;
	}
	for (int64_t i = 0; i < n; i++) {
		int t = res->templ[i], c = res->clust[i];
		if (t < 0 || t >= K || c < 0 || c >= K) {
			rc = NQ_EINTERNAL;
			goto out;
		}
		own[t]++;
		if (rep[c] < 0 || t < rep[c])
			rep[c] = t;
	}
	/* representatives, in the old order (rep[c] is c's smallest template
	 * with spikes, and every template has one cluster, so no template
	 * represents two) */
	for (int k = 0; k < K; k++)
		if (rep[k] >= 0)
			newid[rep[k]] = -2;
	for (int k = 0; k < K; k++)
		if (newid[k] == -2)
			newid[k] = next++;
	for (int k = 0; k < K; k++)
		if (newid[k] == -1 && own[k] > 0)
			newid[k] = next++;
	for (int k = 0; k < K; k++)
		if (newid[k] == -1)
			newid[k] = next++;
	for (int k = 0; k < K; k++)
		ident &= newid[k] == k;
	if (ident) {
		rc = 0;
		goto out;
	}
	/* per-cluster arrays move with the cluster: from c to its
	 * representative's new id (clusters without spikes stay zero) */
	{
		int *good = calloc((size_t) K + 1, sizeof(int));
		float *contam = calloc((size_t) K + 1, sizeof(float));
		float *amp = calloc((size_t) K + 1, sizeof(float));
		int64_t *cnt = calloc((size_t) K + 1, sizeof(int64_t));
		if (!good || !contam || !amp || !cnt) {
			free(good);
			free(contam);
			free(amp);
			free(cnt);
			goto out;
		}
		for (int c = 0; c < K; c++) {
			if (rep[c] < 0)
				continue;
			int d = newid[rep[c]];
			good[d] = res->good[c];
			contam[d] = res->contam[c];
			amp[d] = res->amp_mean[c];
			cnt[d] = res->counts[c];
		}
		free(res->good);
		free(res->contam);
		free(res->amp_mean);
		free(res->counts);
		res->good = good;
		res->contam = contam;
		res->amp_mean = amp;
		res->counts = cnt;
	}
	for (int64_t i = 0; i < n; i++) {
		res->clust[i] = newid[rep[res->clust[i]]];
		res->templ[i] = newid[res->templ[i]];
	}
	if ((rc = permute_rows(res->templates,
	                       sizeof(float) * (size_t) res->nt * res->C, K,
	                       newid)) != 0)
		goto out;
	rc = NQ_ENOMEM;
	sim = malloc(sizeof(float) * (size_t) K * K);
	if (sim == NULL)
		goto out;
	for (int a = 0; a < K; a++)
		for (int b = 0; b < K; b++)
			sim[(size_t) newid[a] * K + newid[b]] =
			        res->similar[(size_t) a * K + b];
	memcpy(res->similar, sim, sizeof(float) * (size_t) K * K);
	for (int i = 0; i < res->n_merges; i++) {
		res->merges[i].a = newid[res->merges[i].a];
		res->merges[i].b = newid[res->merges[i].b];
	}
	rc = 0;
out:
	free(own);
	free(rep);
	free(newid);
	free(sim);
	return rc;
}
