"""The runs table every approach fits: one shape whoever trained the runs (`table`), the one
grouping into IsoFLOP budgets (`budgets`), which runs the fits use and why not (`selection`), all
three in order (`prepare`), and results-shaped tables from a known surface (`simulated`)."""
