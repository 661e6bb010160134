"""brokergraph connector for QST order routing."""
