"""Optimisation back-ends (HiGHS LP/MILP, cvxpy SDP) behind small interfaces."""
