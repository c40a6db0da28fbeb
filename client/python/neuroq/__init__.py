"""neuroq: client of the neuroq GPU compute service (neuroqd).

    import neuroq
    c = neuroq.Client()                      # NEUROQ_URL or the default socket
    job = c.submit("gsn", inputs={"data": x}, params={"wantshrinkage": True})
    job.wait()                               # progress bar; raises on failure
    res = job.result()                       # arrays as numpy, scalars as Python

    res = neuroq.perform_gsn(x, {"wantshrinkage": 1})   # like gsn.perform_gsn
    res = neuroq.spikesort("rec.bin", "chanmap.json", output_dir="rec_phy",
                           n_channels=32, sample_rate=30000)
    phy, sorting = neuroq.si.run_sorter(si_recording, "rec_phy")  # SpikeInterface
"""

from . import errors
from .client import Client, Job, JobList, decode_value, default_url, encode_array
from .errors import (DaemonError, JobError, NeuroqError, RequestError,
                     ResourceError, Unreachable)
from .gsn import perform_gsn
from .spikesort import spikesort
from . import si  # spikeinterface itself is imported only on use

# the one place of the package version (pyproject.toml reads it); equal to the
# C project's VERSION in the top CMakeLists.txt (tests/e2e/test_wheel.py checks)
__version__ = "0.1.0"

__all__ = ["Client", "Job", "JobList", "perform_gsn", "errors", "NeuroqError", "RequestError",
           "JobError", "ResourceError", "DaemonError", "Unreachable", "default_url",
           "spikesort", "si", "encode_array", "decode_value", "__version__"]
