"""Entry point: `python -m pipeline` trains one model, `python -m pipeline -m` sweeps.

Exit status (pipeline.failure): 2 bad configuration or data, nothing ran;
1 a job failed; 128+N ended by signal N; 0 otherwise.
"""

import sys

from pipeline import credentials, fork_server
from pipeline.termination import termination

if __name__ == "__main__":  # not in a worker, which imports this module as __mp_main__
    # First: a password in a URI never reaches Hydra's config, files or logs (workers inherit the result).
    sys.argv[1:] = credentials.take_from_argv(sys.argv[1:])
    # Ctrl-C or SIGTERM during the imports below ends the command at its first safe point, in one
    # line, not with a KeyboardInterrupt traceback from the middle of an import.
    termination.install()
    # Before the imports below (1.5 s): a parallel sweep's workers are forked from a process that
    # imports the same code meanwhile, on another core.
    fork_server.start_if_parallel_sweep(sys.argv[1:])

import hydra  # noqa: E402

from pipeline import failure  # noqa: E402
from pipeline.config import register_configs  # noqa: E402
from pipeline.grid import without_repeated_values  # noqa: E402
from pipeline.job import run  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="config")
def hydra_app(cfg):
    return run(cfg)


def main():
    if any(arg in ("-m", "--multirun") for arg in sys.argv[1:]):
        sys.argv[1:], notes = without_repeated_values(sys.argv[1:])
        for note in notes:
            print(note)
    failure.run_entry_point(hydra_app)


if __name__ == "__main__":
    main()
