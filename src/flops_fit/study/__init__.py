"""A study that steers itself: rounds planned from the fit until N_opt(C*) is precise enough,
then a validation run that scores the law. Framework-free (the `next_round` and `validation`
pipelines and `kedro study` are thin adapters):

- `target`: the answer at C* (N_opt with its interval, by the recommended approach);
- `design`: the next round's runs, chosen from the fit's bootstrap draws per FLOP;
- `rounds`: when to stop, the round documents and the `study_rounds` table;
- `validation`: the validation runs and the verdict on the law.
"""
