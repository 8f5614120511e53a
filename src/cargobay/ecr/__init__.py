"""The ECR control plane: AWS JSON 1.1 (`X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.*`)
over the same registry services as `/v2/`."""
