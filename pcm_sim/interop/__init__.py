"""Networks from other tools: snntorch modules and NIR graphs, onto analog arrays."""
