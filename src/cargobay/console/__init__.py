"""The web console under `/console/` (issue 17): server-rendered pages over the same services,
authorized as the ECR actions they perform."""
