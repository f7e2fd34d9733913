"""Operations: schema migrations, backup and restore, health checks (``_health``), analytics (``analytics``)."""
