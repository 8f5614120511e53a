"""ECR lifecycle policies: the policy grammar (policy), which images a policy expires
(evaluate), and the periodic job that expires them (job)."""
