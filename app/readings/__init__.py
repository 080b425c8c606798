"""Daily online operating data of monitored equipment, and the rules that find anomalies in it (plan 5.4)."""
