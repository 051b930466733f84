"""Resume: a job whose identical configuration already FINISHED in the experiment is not trained again.

A job's identity is a hash of its resolved configuration without the keys
that cannot change its result (``config.result_neutral``: where runs are
stored, what is printed, how it is run). ``sweep.rerun=true`` trains anyway.
"""

import hashlib
import json

from pipeline.config import result_neutral
from pipeline.tracking import layout


def config_hash(resolved_config):
    """16 hex digits of SHA-256 over the result-relevant config values, order-independent."""
    params = {
        key: value
        for key, value in layout.job_params(resolved_config).items()
        if key not in layout.PARAM_ALIASES and not result_neutral(key)
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
