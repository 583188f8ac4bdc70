"""Reading runs: the tracer, audits, information maps, likelihood, figures, charts and the HTML report."""
