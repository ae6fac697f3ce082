"""Studies beyond the paper's tables: efficiency (Sec. 4.1's timing), the extractor-choice, extractor-
limit and extractor-fold studies and the training-budget study, each run by ``isg study NAME``
(:mod:`isg_core.studies.registry`: a study is its module's ``run`` and one registration)."""
