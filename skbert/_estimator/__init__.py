"""The scikit-learn estimator and the fitted encoder every front-end asks."""
