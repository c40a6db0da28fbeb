/*
 * gsn_negeig.c — the PSD projection of a matrix with few negative
 * eigenvalues (spec §2.7), without a tridiagonal reduction.
 *
 * P₊(A) = A − X Θ Xᵀ over the eigenpairs (θ, x) with θ < 0. When only a
 * few of them lie below zero (the signal and noise arguments of the
 * biconvex loop on data where it iterates: 11 and 2 of 1000), they come
 * from a block Lanczos process with full reorthogonalization, built from
 * the kernels' level-3 ops only (gemm, syrk, potrf, a small syevd), so the
 * cuda backend runs the same algorithm:
 *
 *  - Krylov basis V = [Q₀ Q₁ …] (n × m, blocks of b columns: 8, or the
 *    eigenvectors of the previous projection of the same argument when
 *    there are more — the loop's second pass projects a matrix close to
 *    the first's: a warm start, slot wk->ne_slot), AV kept beside it;
 *    Q_{j+1} from AQ_j by two passes of classical Gram–Schmidt against V
 *    and two Cholesky QRs (the b×b factor on the host; a column that
 *    breaks down is replaced by random numbers);
 *  - Rayleigh–Ritz on H = Vᵀ A V (its lower triangle, one row block a
 *    step) after 4 blocks (2 warm), then every second block: θ and Y by
 *    syevd of the m×m H, and the true residuals ‖A x − θ x‖ = ‖AV y −
 *    θ V y‖ (no product with A);
 *  - accepted when every Ritz pair with θ < −tol has a residual ≤ tol
 *    (tol = 2 ε ‖A‖_F — 4 ε left cN 1.1e-15 from main's exact path on
 *    the active data at N = 1000, 2 ε 2e-16: the error a pair leaves in
 *    A₊ is its residual; a
 *    pair with −tol ≤ θ < 0 is left in, an error ≤ tol; with no θ < −tol
 *    after 8 blocks, θ₀ − ‖r₀‖ ≥ −tol);
 *  - checked: A₊ + max(ridge, 4 tol)·I must factor (potrf, n³/3): what
 *    is left below zero is above −8 ε ‖A‖_F (float64: below the ridge
 *    at every ‖A‖_F < 5.6e4). A negative
 *    eigenvalue the process missed (a cluster, a multiple eigenvalue
 *    beyond the block size) fails it; the iteration then goes on, 4
 *    blocks at least before the next check, 3 checks at most.
 *
 * Asked for a proof (prove = 1: gsn_psd tries a warm slot before its
 * not-PD test), it also gives up at the first Rayleigh–Ritz step whose
 * lowest Ritz value is not below −(n+1)² tol (proves_indefinite), and
 * finishes only with one that is: such a matrix fails any Cholesky test.
 *
 * It gives up (*done = 0, M untouched: the caller takes the exact path)
 * after 4 blocks from a cold start when the lowest Ritz value is still
 * above 0 and above 7e-4 × the highest (edge_probe: a fitted threshold),
 * when more than n/10 Ritz values are negative (interlacing: A has at
 * least as many), when from 8 blocks on the residuals do not fall
 * threefold per 2 blocks from one Rayleigh–Ritz step to the next, when
 * the basis reaches min(n/2, 320) columns, or on a repeated breakdown. Data
 * whose negative eigenvalues reach into a dense spread around zero (GSN's
 * benchmark data: 78 of 1000 in [−0.11, 0) among positive ones from 0) give
 * up at the edge probe, 4 blocks (8–10 blocks without it).
 *
 * Cost on the biconvex-active data at N = 1000 (11 and 2 negative
 * eigenvalues): 96–176 Krylov vectors, i.e. 2n²m = 0.2–0.35 Gflop of
 * skinny gemm, plus one potrf, against the exact path's 4/3 n³ dsytrd
 * (half level-2) — bench/README.md, issue 17.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gsn_internal.h"
#include "nq_error.h"

#define NE_B      8   /* block size from a cold start */
#define NE_BMAX   32  /* … and at most, from a warm one */
#define NE_MAXM   320 /* basis columns at most */
#define NE_TOLC   2.0 /* tol = NE_TOLC ε ‖A‖_F */
#define NE_CHECKS 3
#define NE_EDGE_B 4    /* blocks before the edge probe (cold start) */
#define NE_EDGE   7e-4 /* … which gives up when θ_min > NE_EDGE θ_max */

struct gsn_negeig {
	int64_t n, mmax, kmax, b;
	void *V, *AV, *H, *Hc, *th; /* n×mmax, n×mmax, mmax², mmax², mmax */
	void *W, *W2, *C, *Lt;      /* n×BMAX, n×BMAX, mmax×BMAX, BMAX² */
	void *Yz, *Ys;              /* mmax × (kmax+1) each */
	void *Rt, *X, *rs;          /* (kmax+1)×n, n×(kmax+1), kmax+1 */
	/* the last accepted eigenvectors of each warm slot (n × BMAX) */
	void *Xw[GSN_NEGEIG_SLOTS];
	int64_t pw[GSN_NEGEIG_SLOTS];
	double *h; /* host: mmax + 2 BMAX² + kmax + 1 */
};

static void
ne_free(struct gsn_dev *g, struct gsn_negeig *ne)
{
	void **bufs[] = {&ne->V,  &ne->AV, &ne->H,     &ne->Hc,
	                 &ne->th, &ne->W,  &ne->W2,    &ne->C,
	                 &ne->Lt, &ne->Ys, &ne->Yz,    &ne->Rt,
	                 &ne->X,  &ne->rs, &ne->Xw[0], &ne->Xw[1]};

	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		gsn_dfree(g, bufs[i]);
	free(ne->h);
	free(ne);
}

void
gsn_negeig_free(struct gsn_dev *g, struct gsn_negeig **ne)
{
	if (*ne != NULL)
		ne_free(g, *ne);
	*ne = NULL;
}

/* The buffers' sizes, in elements (the layout of struct gsn_negeig), for
 * a basis of at most cap columns (p ≤ m ≤ mmax: kmax ≤ mmax loses
 * nothing). */
static void
ne_dims(int64_t n, int64_t cap, int64_t *mmax, int64_t *kmax)
{
	*mmax = n / 2 < NE_MAXM ? n / 2 : NE_MAXM;
	*mmax = cap < *mmax ? cap : *mmax;
	*mmax -= *mmax % NE_B;
	*kmax = n / 10 < *mmax ? n / 10 : *mmax;
}

double
gsn_negeig_bytes(int64_t n, double es)
{
	int64_t mm, km;
	double k1, dn, dm;

	if (n < GSN_NEGEIG_MIN_N)
		return 0;
	ne_dims(n, NE_MAXM, &mm, &km);
	k1 = (double) km + 1;
	dn = (double) n;
	dm = (double) mm;
	return es * (2 * dn * dm + 2 * dm * dm + dm +
	             (2.0 + GSN_NEGEIG_SLOTS) * dn * NE_BMAX + dm * NE_BMAX +
	             NE_BMAX * NE_BMAX + 2 * dm * k1 + 2 * k1 * dn + k1);
}

static int
ne_alloc(struct gsn_dev *g, int64_t n, int64_t cap, struct gsn_negeig **out)
{
	struct gsn_negeig *ne = calloc(1, sizeof(*ne));
	int64_t mm, k1;
	int rc;

	if (ne == NULL)
		return NQ_ENOMEM;
	ne->n = n;
	ne_dims(n, cap, &ne->mmax, &ne->kmax);
	mm = ne->mmax;
	k1 = ne->kmax + 1;
	ne->h = malloc((size_t) (mm + (int64_t) 2 * NE_BMAX * NE_BMAX + k1) *
	               sizeof(double));
	rc = ne->h == NULL ? NQ_ENOMEM : 0;
	if (rc == 0)
		rc = gsn_dalloc(g, n * mm, &ne->V);
	if (rc == 0)
		rc = gsn_dalloc(g, n * mm, &ne->AV);
	if (rc == 0)
		rc = gsn_dalloc(g, mm * mm, &ne->H);
	if (rc == 0)
		rc = gsn_dalloc(g, mm * mm, &ne->Hc);
	if (rc == 0)
		rc = gsn_dalloc(g, mm, &ne->th);
	if (rc == 0)
		rc = gsn_dalloc(g, n * NE_BMAX, &ne->W);
	if (rc == 0)
		rc = gsn_dalloc(g, n * NE_BMAX, &ne->W2);
	if (rc == 0)
		rc = gsn_dalloc(g, mm * NE_BMAX, &ne->C);
	if (rc == 0)
		rc = gsn_dalloc(g, (int64_t) NE_BMAX * NE_BMAX, &ne->Lt);
	for (int i = 0; i < GSN_NEGEIG_SLOTS && rc == 0; i++)
		rc = gsn_dalloc(g, n * NE_BMAX, &ne->Xw[i]);
	if (rc == 0)
		rc = gsn_dalloc(g, mm * k1, &ne->Ys);
	if (rc == 0)
		rc = gsn_dalloc(g, mm * k1, &ne->Yz);
	if (rc == 0)
		rc = gsn_dalloc(g, k1 * n, &ne->Rt);
	if (rc == 0)
		rc = gsn_dalloc(g, n * k1, &ne->X);
	if (rc == 0)
		rc = gsn_dalloc(g, k1, &ne->rs);
	if (rc != 0) {
		ne_free(g, ne);
		return rc;
	}
	*out = ne;
	return 0;
}

static void *
col(struct gsn_dev *g, void *base, int64_t ld, int64_t j)
{
	return (char *) base + (size_t) (ld * j) * g->es;
}

/* G (b×b, host, column-major, SPD) = L Lᵀ; Lt ← (L⁻¹)ᵀ, upper. −1, or
 * the first column j whose pivot is ≤ 1e-10 G[j,j] (column j of the block
 * nearly in the span of the ones before it: a breakdown). */
static int
chol_inv_t(int b, double *G, double *Lt)
{
	for (int j = 0; j < b; j++) {
		double d = G[j + b * j], g0 = d;

		for (int k = 0; k < j; k++)
			d -= G[j + b * k] * G[j + b * k];
		if (!(d > 1e-10 * g0))
			return j;
		d = sqrt(d);
		G[j + b * j] = d;
		for (int i = j + 1; i < b; i++) {
			double s = G[i + b * j];

			for (int k = 0; k < j; k++)
				s -= G[i + b * k] * G[j + b * k];
			G[i + b * j] = s / d;
		}
	}
	/* M = L⁻¹ (lower) column by column, stored transposed into Lt */
	memset(Lt, 0, sizeof(double) * (size_t) (b * b));
	for (int c = 0; c < b; c++) {
		for (int i = c; i < b; i++) {
			double s = i == c ? 1.0 : 0.0;

			for (int k = c; k < i; k++)
				s -= G[i + b * k] * Lt[c + b * k];
			Lt[c + b * i] = s / G[i + b * i]; /* (L⁻¹)[i,c] */
		}
	}
	return -1;
}

/* dst (n×b) = src · L⁻ᵀ with src = Q Lᵀ: one Cholesky QR. *bad = the
 * column of a breakdown, else −1. */
static int
cholqr(struct gsn_dev *g, struct gsn_negeig *ne, const void *src, void *dst,
       int *bad)
{
	int64_t b = ne->b;
	double *G = ne->h + ne->mmax, *Lt = G + b * b;
	int rc = KOP(g->kb, syrk, g->dt, KERN_T, b, ne->n, 1.0, src, ne->n, 0.0,
	             ne->C, b);

	if (rc == 0)
		rc = gsn_down(g, G, ne->C, b * b);
	if (rc != 0)
		return rc;
	*bad = chol_inv_t((int) b, G, Lt);
	if (*bad >= 0)
		return 0;
	rc = gsn_up(g, ne->Lt, Lt, b * b);
	if (rc == 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_N, ne->n, b, b, 1.0,
		         src, ne->n, ne->Lt, b, 0.0, dst, ne->n);
	return rc;
}

/* Column j of W ← pseudo-random numbers in [−1, 1) (seed: the call's
 * count of them, so that every replacement differs). */
static int
random_col(struct gsn_dev *g, struct gsn_negeig *ne, void *W, int64_t j,
           uint32_t seed)
{
	double *u = malloc((size_t) ne->n * sizeof(double));
	int rc;

	if (u == NULL)
		return NQ_ENOMEM;
	gsn_mt_uniforms(GSN_SEED + seed, u, ne->n);
	for (int64_t i = 0; i < ne->n; i++)
		u[i] = 2.0 * u[i] - 1.0;
	rc = gsn_up(g, col(g, W, ne->n, j), u, ne->n);
	free(u);
	return rc;
}

/* V's columns m..m+b ← W (n×b) made orthonormal and orthogonal to V's
 * first m: two passes of classical Gram–Schmidt against V, then two
 * Cholesky QRs. A column that breaks down (the Krylov space lost a
 * dimension there: an invariant subspace, or a warm start's residuals of
 * low rank) is replaced by random numbers and the block done again, b
 * times at most (*bad = 1 then). */
static int
orth_block(struct gsn_dev *g, struct gsn_negeig *ne, int64_t m, int *bad)
{
	int64_t n = ne->n, b = ne->b;
	int rc = 0, col_bad = -1;

	*bad = 0;
	for (int64_t tries = 0; rc == 0; tries++) {
		for (int pass = 0; pass < 2 && rc == 0 && m > 0; pass++) {
			rc = KOP(g->kb, gemm, g->dt, KERN_T, KERN_N, m, b, n,
			         1.0, ne->V, n, ne->W, n, 0.0, ne->C, m);
			if (rc == 0)
				rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_N, n,
				         b, m, -1.0, ne->V, n, ne->C, m, 1.0,
				         ne->W, n);
		}
		if (rc == 0)
			rc = cholqr(g, ne, ne->W, ne->W2, &col_bad);
		if (rc == 0 && col_bad < 0)
			rc = cholqr(g, ne, ne->W2, col(g, ne->V, n, m),
			            &col_bad);
		if (rc != 0 || col_bad < 0)
			return rc;
		if (tries >= b) {
			*bad = 1;
			return 0;
		}
		rc = random_col(g, ne, ne->W, col_bad,
		                (uint32_t) (1 + m + tries));
	}
	return rc;
}

/* Q_{j+1} (V's columns m..m+b) from AQ_j. */
static int
next_block(struct gsn_dev *g, struct gsn_negeig *ne, int64_t m, int *bad)
{
	int rc = gsn_dcopy(g, ne->W, col(g, ne->AV, ne->n, m - ne->b),
	                   ne->n * ne->b);

	return rc == 0 ? orth_block(g, ne, m, bad) : rc;
}

/* The starting block: the slot's last eigenvectors (pw of them, a warm
 * start), then pseudo-random numbers in [−1, 1), made orthonormal. */
static int
first_block(struct gsn_dev *g, struct gsn_negeig *ne, int slot, int *bad)
{
	int64_t pw = slot >= 0 ? ne->pw[slot] : 0;
	int rc = pw > 0 ? gsn_dcopy(g, ne->W, ne->Xw[slot], ne->n * pw) : 0;

	for (int64_t j = pw; j < ne->b && rc == 0; j++)
		rc = random_col(g, ne, ne->W, j, (uint32_t) (ne->n + j));
	return rc == 0 ? orth_block(g, ne, 0, bad) : rc;
}

/* The Ritz pairs of V (m columns) with θ < −tol (syevr_below of H: the
 * others' vectors are never formed): *p of them (> kmax: too many, or the
 * small eigensolver failed; nothing else computed), θ ascending into ne->h
 * and ne->th, Y (m × p) into Yz; rs[0..p) ← their residual norms. */
static int
ritz(struct gsn_dev *g, struct gsn_negeig *ne, int64_t m, double tol,
     int64_t *p, double *rs)
{
	int64_t n = ne->n, mm = ne->mmax, q;
	int rc, info = 0;

	rc = gsn_dcopy(g, ne->Hc, ne->H, mm * m);
	if (rc == 0)
		rc = KOP(g->kb, syevr_below, g->dt, m, ne->Hc, mm, -tol,
		         ne->kmax, ne->th, ne->Yz, mm, p, &info);
	if (rc == 0 && info != 0)
		*p = ne->kmax + 1;
	if (rc != 0 || *p == 0 || *p > ne->kmax)
		return rc;
	q = *p;
	rc = gsn_down(g, ne->h, ne->th, q);
	/* Rt = Yᵀ AVᵀ − (YΘ)ᵀ Vᵀ, q × n; its rows' norms */
	if (rc == 0)
		rc = gsn_dcopy(g, ne->Ys, ne->Yz, mm * q);
	if (rc == 0)
		rc = KOP(g->kb, scale_rc, g->dt, m, q, ne->Ys, mm, NULL,
		         ne->th);
	if (rc == 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_T, KERN_T, q, n, m, 1.0,
		         ne->Yz, mm, ne->AV, n, 0.0, ne->Rt, q);
	if (rc == 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_T, KERN_T, q, n, m, -1.0,
		         ne->Ys, mm, ne->V, n, 1.0, ne->Rt, q);
	if (rc == 0)
		rc = KOP(g->kb, row_sumsq, g->dt, q, n, ne->Rt, q, ne->rs);
	if (rc == 0)
		rc = gsn_down(g, rs, ne->rs, q);
	for (int64_t i = 0; rc == 0 && i < q; i++)
		rs[i] = sqrt(rs[i]);
	return rc;
}

/*
 * The edge probe, after NE_EDGE_B cold blocks (m = 32, at the first
 * Rayleigh–Ritz step, before it and before ‖A‖_F is summed): all m Ritz
 * values (syevd of the small H); *far = 1 when the lowest is still above
 * 0 and above NE_EDGE × the highest. Where A's negative eigenvalues stand
 * out of its spectrum, the lowest Ritz value is below 0 by then (the
 * biconvex-active data's signal argument: −5.55 / −13.8 at N = 500 /
 * 1000; every spectrum of gsn_negeig_test) or small against the top (its
 * noise argument, 1–2 eigenvalues near −0.01 / −0.03: θ_min/θ_max =
 * 2.9e-4 / 5.0e-6); where they are a dense spread through zero, it is not
 * (GSN's benchmark data, 29–86 of them in [−0.24, 0) among positive ones
 * from 0: 1.7e-3 to 4.7e-3 on the `bench` and `uneven` kinds, N = 500 and
 * 1000; those give up at 80 vectors otherwise). NE_EDGE sits a factor
 * 2.4 from either side: FITTED to these matrices (bench/README.md, issue
 * 17), not derived; a projection it sends away wrongly loses only the
 * fast path (the exact one is main's), one it keeps wrongly the 4 blocks'
 * work more.
 */
static int
edge_probe(struct gsn_dev *g, struct gsn_negeig *ne, int64_t m, int *far)
{
	int64_t mm = ne->mmax;
	double *th = ne->h;
	int info = 0, rc = gsn_dcopy(g, ne->Hc, ne->H, mm * m);

	*far = 0;
	if (rc == 0)
		rc = KOP(g->kb, syevd, g->dt, m, ne->Hc, mm, ne->th, &info);
	if (rc != 0 || info != 0)
		return rc;
	rc = gsn_down(g, th, ne->th, m);
	if (rc == 0)
		*far = th[0] > 0 && th[m - 1] > 0 &&
		       th[0] > NE_EDGE * th[m - 1];
	return rc;
}

/* X = V Y_p diag(sqrt(−θ)); tmp = M + X Xᵀ + shift·I must factor: every
 * eigenvalue of A₊ is then > −shift. shift = max(ridge, 4 tol): in
 * float32 the zeros A₊ is left with round to ~ε‖A‖, far above the ridge. */
static int
check(struct gsn_dev *g, struct gsn_negeig *ne, int64_t m, int64_t p,
      double shift, const void *M, void *tmp, int *ok)
{
	int64_t n = ne->n;
	double *s = ne->h + ne->mmax;
	int rc, info = 0;

	for (int64_t i = 0; i < p; i++)
		s[i] = sqrt(-ne->h[i]);
	rc = p > 0 ? gsn_up(g, ne->rs, s, p) : 0;
	if (rc == 0 && p > 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_N, n, p, m, 1.0,
		         ne->V, n, ne->Yz, ne->mmax, 0.0, ne->X, n);
	if (rc == 0 && p > 0)
		rc = KOP(g->kb, scale_rc, g->dt, n, p, ne->X, n, NULL, ne->rs);
	if (rc == 0)
		rc = gsn_dcopy(g, tmp, M, n * n);
	if (rc == 0 && p > 0)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, p, 1.0, ne->X, n, 1.0,
		         tmp, n);
	if (rc == 0)
		rc = KOP(g->kb, add_diag, g->dt, n, tmp, shift);
	if (rc == 0)
		rc = KOP(g->kb, potrf, g->dt, n, tmp, n, &info);
	*ok = rc == 0 && info == 0;
	return rc;
}

/* wk->ne with room for NE_MAXM columns, the first m of V, AV and H and
 * the warm slots copied over. The first call allocates room for the
 * edge probe's NE_EDGE_B blocks only: data whose projections give up
 * there (the bench data) never pay for zero-filling the rest. */
static int
ne_grow(struct gsn_dev *g, struct gsn_work *wk, int64_t m)
{
	struct gsn_negeig *o = wk->ne, *ne = NULL;
	int64_t n = o->n;
	int rc = ne_alloc(g, n, NE_MAXM, &ne);

	if (rc != 0)
		return rc;
	ne->b = o->b;
	rc = gsn_dcopy(g, ne->V, o->V, n * m);
	if (rc == 0)
		rc = gsn_dcopy(g, ne->AV, o->AV, n * m);
	for (int64_t j = 0; j < m && rc == 0; j++)
		rc = gsn_dcopy(g, col(g, ne->H, ne->mmax, j),
		               col(g, o->H, o->mmax, j), m);
	for (int i = 0; i < GSN_NEGEIG_SLOTS && rc == 0; i++) {
		ne->pw[i] = o->pw[i];
		if (o->pw[i] > 0)
			rc = gsn_dcopy(g, ne->Xw[i], o->Xw[i], n * o->pw[i]);
	}
	if (rc != 0) {
		ne_free(g, ne);
		return rc;
	}
	ne_free(g, o);
	wk->ne = ne;
	return 0;
}

/* One run's state. */
struct ne_run {
	void *M;
	double tol, gprev; /* gprev: the last Rayleigh–Ritz step's max
	                    * residual / tol (inf: no θ < −tol) */
	int64_t m, p, mchecked;
	int steps, sprev, next_rr, checks, ok, prove;
};

/* θ_min ≥ λ_min(M) (a Rayleigh quotient); a Cholesky factorization that
 * succeeds factors M + ΔA with ‖ΔA‖₂ ≤ (n+1) n ε ‖M‖₂ (Higham, Thm 10.5),
 * so when θ_min < −(n+1)² tol = −2(n+1)² ε ‖M‖_F it must fail. */
static int
proves_indefinite(const struct gsn_negeig *ne, const struct ne_run *r)
{
	double n1 = (double) (ne->n + 1);

	return r->p > 0 && ne->h[0] < -n1 * n1 * r->tol;
}

/* AV's next b columns = M Q_j, and H's row block of them: (AQ_j)ᵀ V. */
static int
expand(struct gsn_dev *g, struct gsn_negeig *ne, struct ne_run *r)
{
	int64_t n = ne->n, b = ne->b;
	/* Mᵀ Q_j: M is symmetric (gsn_psd made it so), and read by columns
	 * a product with few columns streams it (kern_cpu_tall.c) */
	int rc =
	        KOP(g->kb, gemm, g->dt, KERN_T, KERN_N, n, b, n, 1.0, r->M, n,
	            col(g, ne->V, n, r->m), n, 0.0, col(g, ne->AV, n, r->m), n);

	r->m += b;
	r->steps++;
	if (rc == 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_T, KERN_N, b, r->m, n, 1.0,
		         col(g, ne->AV, n, r->m - b), n, ne->V, n, 0.0,
		         (char *) ne->H + (size_t) (r->m - b) * g->es,
		         ne->mmax);
	return rc;
}

/* A Rayleigh–Ritz step, the check when it has converged, the next step's
 * block. *stop = 1 when done (r->ok) or giving up. */
static int
rr_step(struct gsn_dev *g, struct gsn_negeig *ne, struct ne_run *r, void *tmp,
        int *stop)
{
	double *rs = ne->h + ne->mmax + (ptrdiff_t) 2 * NE_BMAX * NE_BMAX;
	double gnow = INFINITY, rmax = 0, rate = 0;
	int64_t b = ne->b;
	int rc = ritz(g, ne, r->m, r->tol, &r->p, rs);

	*stop = 1;
	if (rc != 0 || r->p > ne->kmax)
		return rc;
	/* asked for a proof: none at the first step, none later (a warm
	 * start's block holds the last negative eigenvectors already) */
	if (r->prove && !proves_indefinite(ne, r))
		return 0;
	for (int64_t i = 0; i < r->p; i++)
		rmax = rs[i] > rmax ? rs[i] : rmax;
	if (r->p >= 1)
		gnow = rmax / r->tol;
	/* a missed negative eigenvalue fails the check; with none below
	 * −tol after 8 blocks, perhaps there is none */
	if (((r->p >= 1 && rmax <= r->tol) || (r->p == 0 && r->steps >= 8)) &&
	    r->m > r->mchecked) {
		rc = check(g, ne, r->m, r->p, fmax(GSN_PSD_RIDGE, 4 * r->tol),
		           r->M, tmp, &r->ok);
		r->checks++;
		if (rc != 0 || r->ok || r->checks >= NE_CHECKS)
			return rc;
		r->mchecked = r->m + 4 * b;
	}
	/* the fall per block since the last step: at least threefold per 2
	 * blocks from 8 blocks on; none below −tol yet is let go up to 16
	 * blocks */
	if (isfinite(gnow) && isfinite(r->gprev))
		rate = pow(r->gprev / gnow,
		           1.0 / (double) (r->steps - r->sprev));
	if (r->steps >= 8 && !(rate * rate >= 3) &&
	    !(isinf(r->gprev) && r->steps < 16))
		return 0;
	/* next: 2 blocks on, or where that rate reaches tol (1 to 8 blocks
	 * on), not before the next check may run */
	r->next_rr = r->steps + 2;
	if (rate > 1.5 && gnow > 1) {
		double need = ceil(log(gnow) / log(rate));

		r->next_rr = r->steps + (need < 1   ? 1
		                         : need > 8 ? 8
		                                    : (int) need);
	}
	if (r->m <= r->mchecked && r->next_rr < (int) (r->mchecked / b) + 1)
		r->next_rr = (int) (r->mchecked / b) + 1;
	r->gprev = gnow;
	r->sprev = r->steps;
	*stop = 0;
	return 0;
}

/* One block of the iteration: AQ_j and H's row block, the edge probe
 * (cold start, NE_EDGE_B blocks), a Rayleigh–Ritz step when due, room for
 * the next block (ne_grow up to NE_MAXM columns), the next block. */
static int
one_block(struct gsn_dev *g, struct gsn_work *wk, struct ne_run *r, int cold,
          int *stop, int *bad)
{
	struct gsn_negeig *ne = wk->ne;
	int64_t n = ne->n, mfull, kfull;
	double fro = 0;
	int rc = expand(g, ne, r);

	if (rc == 0 && cold && r->steps == NE_EDGE_B) {
		rc = edge_probe(g, ne, r->m, stop);
		if (rc != 0 || *stop)
			return rc;
	}
	/* tol = NE_TOLC ε ‖A‖_F, first needed here */
	if (rc == 0 && r->steps >= r->next_rr && r->tol == 0) {
		rc = KOP(g->kb, sumsq, g->dt, n * n, r->M, &fro);
		r->tol = NE_TOLC * (g->dt == KERN_F64 ? 0x1p-52 : 0x1p-23) *
		         sqrt(fro);
	}
	if (rc == 0 && r->steps >= r->next_rr)
		rc = rr_step(g, ne, r, wk->tmp, stop);
	ne_dims(n, NE_MAXM, &mfull, &kfull);
	if (rc == 0 && !*stop && r->m + ne->b > ne->mmax) {
		if (ne->mmax >= mfull) {
			*stop = 1;
			return 0;
		}
		rc = ne_grow(g, wk, r->m);
		ne = wk->ne;
	}
	if (rc == 0 && !*stop)
		rc = next_block(g, ne, r->m, bad);
	return rc;
}

int
gsn_negeig_warm(const struct gsn_work *wk)
{
	int slot = wk->ne_slot;

	return wk->ne != NULL && slot >= 0 && slot < GSN_NEGEIG_SLOTS &&
	       wk->ne->pw[slot] > 0;
}

int
gsn_negeig_psd(struct gsn_dev *g, int64_t n, void *M, struct gsn_work *wk,
               int prove, struct gsn_negeig_stats *st, int *done)
{
	struct ne_run r = {.M = M, .gprev = INFINITY, .prove = prove};
	struct gsn_negeig *ne;
	int rc = 0, bad = 0, stop = 0, slot, cold;

	*done = 0;
	memset(st, 0, sizeof(*st));
	if (n < GSN_NEGEIG_MIN_N)
		return 0;
	if (wk->ne == NULL) {
		rc = ne_alloc(g, n, (int64_t) NE_EDGE_B * NE_B, &wk->ne);
		if (rc != 0)
			return rc;
	}
	ne = wk->ne;
	slot = wk->ne_slot < GSN_NEGEIG_SLOTS ? wk->ne_slot : -1;
	ne->b = slot >= 0 && ne->pw[slot] > NE_B ? ne->pw[slot] : NE_B;
	/* a warm start wider than the probe's room */
	if (ne->b > ne->mmax)
		rc = ne_grow(g, wk, 0);
	ne = wk->ne;
	if (rc == 0)
		rc = first_block(g, ne, slot, &bad);
	cold = !(slot >= 0 && ne->pw[slot] > 0);
	/* Rayleigh–Ritz after 4 blocks (2 warm), then as rr_step says */
	r.next_rr = slot >= 0 && ne->pw[slot] > 0 ? 2 : 4;
	if (slot >= 0)
		ne->pw[slot] = 0; /* until this call succeeds */
	while (rc == 0 && !bad && !stop)
		rc = one_block(g, wk, &r, cold, &stop, &bad);
	ne = wk->ne; /* ne_grow may have replaced it */
	st->m = r.m;
	st->checks = r.checks;
	if (rc != 0 || !r.ok)
		return rc;
	if (prove && !proves_indefinite(ne, &r))
		return 0;
	/* the checked matrix without the potrf: the same ops on M */
	if (r.p > 0)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, r.p, 1.0, ne->X, n, 1.0,
		         M, n);
	/* the vectors themselves for the slot's next call */
	if (rc == 0 && slot >= 0 && r.p > 0 && r.p <= NE_BMAX)
		rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_N, n, r.p, r.m, 1.0,
		         ne->V, n, ne->Yz, ne->mmax, 0.0, ne->Xw[slot], n);
	if (rc == 0 && slot >= 0 && r.p > 0 && r.p <= NE_BMAX)
		ne->pw[slot] = r.p;
	st->k = r.p;
	*done = rc == 0;
	return rc;
}
