"""Spare parts: the regional warehouses, their stock, and the parts cases reserve and use (plan 5.6)."""
