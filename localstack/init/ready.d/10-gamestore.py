# LocalStack init hook (runs inside LocalStack once it is ready): the AWS resources the
# functions use, as the SAM template creates them in AWS.
#   - SQS queue gamestore-welcome-emails, redriven to gamestore-welcome-emails-dlq after
#     5 receives (maxReceiveCount 5)
#   - SES: the sender identity verified (SES v1, which LocalStack emulates)
#   - Secrets Manager: the JWT secret (random, made here); the database credentials are
#     stored by whoever knows the database (scripts/lib.sh lambda_stack_start)
import json
import os
import secrets

import boto3

endpoint = "http://" + os.environ.get("LOCALSTACK_HOST", "127.0.0.1:4566")
region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)

queue = os.environ.get("GAMESTORE_QUEUE_NAME", "gamestore-welcome-emails")
sqs = session.client("sqs", endpoint_url=endpoint)
dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue_url = sqs.create_queue(
    QueueName=queue,
    Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
    },
)["QueueUrl"]
print(f"gamestore: queue {queue_url} (dead letters: {dlq_url})")

sender = os.environ.get("GAMESTORE_MAIL_FROM", "welcome@gamestore.example")
session.client("ses", endpoint_url=endpoint).verify_email_identity(EmailAddress=sender)
print(f"gamestore: SES sender {sender} verified")

sm = session.client("secretsmanager", endpoint_url=endpoint)


def put_secret(name, value):
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=value)
    print(f"gamestore: secret {name} stored")


put_secret("gamestore/jwt-secret", secrets.token_urlsafe(48))
