"""A small unit beside two big ones (issue #16), with SpikeInterface's
generator: its 2-column 32-channel probe (20 µm pitch); a unit of 122 µV
peak 17 and 15 µm from units of 600 and 470 µV (depths 160–188 µm, 20 µm
from the probe's plane); n_units - 3 others of 150–300 µV packed along the
probe above and below them (13 and 9 µm apart with 20 units); 5 µV noise,
15 Hz Poisson trains (SpikeInterface's defaults). Templates from
generate_templates at these locations, each scaled to its peak amplitude.
The small unit is the last one."""
import numpy as np

FS = 30000.0
AMPS_UV = (600.0, 470.0, 122.0)


def smallbig_recording(duration, n_units=20, seed=17):
    """(recording, ground-truth sorting) of `duration` seconds."""
    import spikeinterface.core as si
    from spikeinterface.core.generate import (generate_multi_columns_probe,
                                              generate_templates)
    probe = generate_multi_columns_probe(
        num_columns=2, num_contact_per_column=16, xpitch=20, ypitch=20,
        contact_shapes="circle", contact_shape_params={"radius": 6})
    probe.set_device_channel_indices(np.arange(32))
    ch = probe.contact_positions
    n_other = n_units - 3
    rng = np.random.default_rng(seed)
    loc = np.zeros((n_units, 3))
    loc[:n_other, 0] = rng.uniform(0, 20, n_other)
    loc[:n_other, 1] = np.concatenate(
        [np.linspace(15, 120, (n_other + 1) // 2),
         np.linspace(230, 290, n_other // 2)])
    loc[:n_other, 2] = rng.uniform(10, 40, n_other)
    # the big pair and the small unit between them
    loc[n_other:] = [[2.0, 160.0, 20.0], [18.0, 188.0, 20.0],
                     [10.0, 175.0, 20.0]]
    tm = generate_templates(ch, loc, FS, 1.0, 3.0, seed=seed)
    want = np.concatenate([np.linspace(150, 300, n_other), AMPS_UV])
    tm = (tm * (want / np.abs(tm).max(axis=(1, 2)))[:, None, None]).astype(
        np.float32)
    return si.generate_ground_truth_recording(
        durations=[float(duration)], sampling_frequency=FS,
        num_units=n_units, probe=probe, templates=tm, seed=seed)
