"""Studies at scale: sweeps, robustness studies and pre-silicon validation reports.

* :mod:`~pcm_sim.studies.sweep` -- sweep files, cells and running them;
* :mod:`~pcm_sim.studies.store` -- the SQLite result database (one row per cell);
* :mod:`~pcm_sim.studies.executors` -- local process pool or Dask distributed cluster;
* :mod:`~pcm_sim.studies.plots` -- figures and CSV export of a database;
* :mod:`~pcm_sim.studies.validate` -- pre-silicon validation reports against a spec.
"""
