"""Classic agents: threads, runs and run steps (azure-ai-agents 1.x, legacy azure-ai-projects 1.0.0bX)."""
