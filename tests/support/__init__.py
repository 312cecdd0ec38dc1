"""Test support code: fixtures and experiments the suite runs, which the benchmarks reuse (as
``tests.support``, from the checkout's root; none of it is installed, and the product imports none of it).

- ``faults``: crash points and traces injected from outside the product (wrapping its functions) for
  the kill trials, in the trial's child process and in its Dask workers
- ``builds``: synthetic build inputs, the CLI build command, killing a process group
- ``kill_trials``: SIGKILLed builds and Dask workers, rerun and compared; garbage and gc
- ``concurrency``: builds and writers committing to one corpus at once, with pinned readers
- ``checkpoint_kills``: training SIGKILLed inside a checkpoint save, resumed and compared
- ``fuzz``: malformed files against every loader, and their counts
- ``hostile_bytes`` / ``hostile_cases`` / ``hostile_runner``: crafted files, the cases, the forked runner
- ``corpus_fixtures`` / ``training_corpus``: small synthetic corpora for the writer, reader and trainer
- ``smplx_reference``: the full-mesh smplx path that the mesh-free regression is checked and timed against
- ``s3_server``: a local S3-compatible server for the object-storage tests
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: the working directory of every child process
