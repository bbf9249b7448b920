"""corescale.operator: reconciles CoreCluster resources into one-CPU worker pods."""
