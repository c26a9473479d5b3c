"""Approach 3's law families (`families`), any family's fit (`solver`), loss and allocation
(`evaluate`), the choice of family by rollout (`choice`) and the study-level fit with a bootstrap
that repeats the choice (`study`)."""
