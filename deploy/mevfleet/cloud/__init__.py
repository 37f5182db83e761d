"""AWS for a fleet (boto3): EC2 inventory, security groups that mirror the host plan's firewall, encrypted
backups to S3. Every AWS call goes through `aws.clients`, so the IAM policy (iam-policy.json) can be
checked against what the code calls."""
