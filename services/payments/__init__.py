"""Payments service: double-entry ledger, balances, deposits, bonuses, earnings, withdrawals."""
