"""Operations: schema migrations (and, later, backup, restore and health)."""
