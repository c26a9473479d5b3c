"""Approach 3, a loss surface L(N, D): the law and its closed-form allocation (`law`), the
objective (`objective`), the batched solver (`solver`), the starts (`starts`), the fit and its
bootstrap on arrays (`fit`), the fit over a study's runs (`study`), its warnings
(`surface_warnings`), and the study's compute model with the allocation under it
(`compute_model`). The other law families and the choice among them are `fitting.laws`."""
