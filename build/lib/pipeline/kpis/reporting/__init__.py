"""Operations reports' maths: figures per period, cost, self-service share, causes of a missed target (pure)."""
