"""Training projects: practice work with instant feedback that grants a qualification."""
