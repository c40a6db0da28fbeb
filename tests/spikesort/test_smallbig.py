"""A small unit beside two big ones (issue #16; gen_smallbig.py: a 122 µV
unit 15–17 µm from units of 600 and 470 µV on a dense 32-channel probe,
one minute). The whitening used to be estimated from every sample, so the
big units' footprints dominated its covariance and it flattened the
directions they span: the small unit, whose footprint is a mix of theirs,
came out at about 6 whitened units where alone it had 39, at the matching
threshold (th_match 6), and two thirds of its spikes were never matched
(accuracy 0.35, no unit at 0.5). With the covariance of the noise alone
(spikes' windows masked out, whiten_noise=true) it is found. The option is
off by default: on SpikeInterface's plain 32-channel recordings it loses
1-3 of 20 units (bench/README.md). The default sort finds it by th_own
(ss_thresh.c): its score against the noise spreads by about 1, so at
about 7 of its own noise it is matched from th_detect (4) of it."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from si_gt import sort_and_score, write_recording  # noqa: E402


@pytest.fixture(scope="module")
def smallbig(tmp_path_factory):
    pytest.importorskip("spikeinterface.core")
    pytest.importorskip("probeinterface")
    from gen_smallbig import smallbig_recording
    d = tmp_path_factory.mktemp("smallbig")
    rec, gt = smallbig_recording(60.0)
    write_recording(d, rec)
    return d, gt



def labels(out):
    """cluster_KSLabel.tsv: each sorted unit's good/mua label."""
    import pandas as pd
    t = pd.read_csv(out / "cluster_KSLabel.tsv", sep="\t")
    return dict(zip(t["cluster_id"], t["KSLabel"]))


def whitened_amplitudes(cmp, out):
    """Each true unit's best-matching sorted unit's mean template-fit
    amplitude (cluster_Amplitude.tsv: whitened units)."""
    import pandas as pd
    t = pd.read_csv(out / "cluster_Amplitude.tsv", sep="\t")
    amp = dict(zip(t["cluster_id"], t["Amplitude"]))
    best = cmp.agreement_scores.idxmax(axis=1)
    return np.array([amp[best[u]] for u in cmp.agreement_scores.index])


def test_small_unit_found(smallbig):
    d, gt = smallbig
    acc, cmp, out, _, log = sort_and_score(d, gt, "phy", "--whiten-noise",
                                        "1")
    amp = whitened_amplitudes(cmp, out)
    print(np.round(acc, 3), np.round(amp, 1))
    assert "stage=whiten noise_only=1" in log
    # the small unit (the last) is found, and every other unit with it
    assert acc[-1] >= 0.8, acc
    assert np.all(acc >= 0.8), acc
    assert len(cmp.get_redundant_units()) == 0
    assert len(cmp.get_false_positive_units()) <= 3
    # in whitened units it is no longer far below the others (0.77 of
    # their median)
    assert amp[-1] >= 0.5 * np.median(amp[:-3]), amp


def test_whitening_of_every_sample_shrinks_it(smallbig):
    """The cause, with the whitening of every sample (the default) and
    th_match for every template (th_own=false): in whitened units the small
    unit is the smallest of all, where alone it stands taller than their
    median. Before the learning passes ramped min_spikes (ss_sort.c
    learn_min_spikes) its template came out at a fifth of the others'
    median (6.7, about th_match: agreement 0 without th_own); learned among
    fewer leftover templates it is about half of it (17.5) and th_match
    alone finds it too."""
    d, gt = smallbig
    acc, cmp, out, _, log = sort_and_score(d, gt, "phy_all", "--th-own", "0")
    amp = whitened_amplitudes(cmp, out)
    print(np.round(acc, 3), np.round(amp, 1))
    assert "noise_only" not in log
    assert amp[-1] < np.min(amp[:-1]), amp
    assert amp[-1] < 0.6 * np.median(amp[:-3]), amp


def test_default_finds_small_unit(smallbig):
    """The default sort (th_own: the small template matched from th_detect
    of its own projection noise) finds the small unit (0.92) and every
    other unit, with no redundant one and one false-positive unit labelled
    good (78 spikes of a big unit's footprint); a second one, 190 spikes
    that violate the refractory period 8 times over (since the ramped
    min_spikes of the learning passes), is labelled mua."""
    d, gt = smallbig
    acc, cmp, out, _, log = sort_and_score(d, gt, "phy_default")
    print(np.round(acc, 3))
    assert "noise_only" not in log
    assert acc[-1] >= 0.8, acc
    assert np.all(acc >= 0.8), acc
    assert len(cmp.get_redundant_units()) == 0
    fps = cmp.get_false_positive_units()
    assert len(fps) <= 2
    label = labels(out)
    assert sum(label[u] == "good" for u in fps) <= 1, (fps, label)
