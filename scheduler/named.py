"""What ``!Ref`` and ``!GetAtt`` of a named resource give, as CloudFormation defines them.

A resource whose name property is set (``TableName``, ``QueueName``, ``BucketName`` …) has a
known physical name, so its Ref and its ARN are known without creating it: ``!Ref`` to an
``AWS::DynamoDB::Table`` is the table's name, to an ``AWS::SNS::Topic`` the topic's ARN, to an
``AWS::SQS::Queue`` the queue's URL (``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``, the
form SQS gives), and ``!GetAtt X.Arn`` is the ARN built from the name. SAM resources such as
``AWS::Serverless::SimpleTable`` reach here as the plain resource the transform made of them.
Without a name property CloudFormation would make one up; the template reader then keeps its
own rule (the logical ID stands for the resource).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["NAMED_TYPES", "Gives", "NamedType", "Place"]


class Gives(enum.Enum):
    """Which form of a named resource an intrinsic gives."""

    NAME = "name"
    ARN = "arn"
    URL = "url"


@dataclass(frozen=True)
class Place:
    """The partition, region and account ARNs are built in."""

    partition: str
    region: str
    account_id: str


@dataclass(frozen=True)
class NamedType:
    name_property: str
    ref: Gives
    arn: str  # with {partition}, {region}, {account} and {name}
    # GetAtt attribute → the form it gives.
    attributes: Mapping[str, Gives] = field(default_factory=lambda: {"Arn": Gives.ARN})
    url: str = ""  # with {region}, {account} and {name}, for Gives.URL

    def value(self, gives: Gives, name: str, place: Place) -> str:
        fields = {"partition": place.partition, "region": place.region, "account": place.account_id, "name": name}
        if gives is Gives.NAME:
            return name
        if gives is Gives.URL:
            return self.url.format(**fields)
        return self.arn.format(**fields)


NAMED_TYPES: dict[str, NamedType] = {
    "AWS::DynamoDB::Table": NamedType(
        "TableName", Gives.NAME, "arn:{partition}:dynamodb:{region}:{account}:table/{name}"
    ),
    "AWS::SQS::Queue": NamedType(
        "QueueName",
        Gives.URL,
        "arn:{partition}:sqs:{region}:{account}:{name}",
        {"Arn": Gives.ARN, "QueueName": Gives.NAME, "QueueUrl": Gives.URL},
        url="https://sqs.{region}.amazonaws.com/{account}/{name}",
    ),
    "AWS::SNS::Topic": NamedType(
        "TopicName",
        Gives.ARN,
        "arn:{partition}:sns:{region}:{account}:{name}",
        {"TopicArn": Gives.ARN, "TopicName": Gives.NAME},
    ),
    "AWS::S3::Bucket": NamedType("BucketName", Gives.NAME, "arn:{partition}:s3:::{name}"),
    "AWS::Kinesis::Stream": NamedType("Name", Gives.NAME, "arn:{partition}:kinesis:{region}:{account}:stream/{name}"),
    "AWS::Events::EventBus": NamedType(
        "Name",
        Gives.NAME,
        "arn:{partition}:events:{region}:{account}:event-bus/{name}",
        {"Arn": Gives.ARN, "Name": Gives.NAME},
    ),
    "AWS::IAM::Role": NamedType("RoleName", Gives.NAME, "arn:{partition}:iam::{account}:role/{name}"),
    "AWS::Logs::LogGroup": NamedType(
        "LogGroupName", Gives.NAME, "arn:{partition}:logs:{region}:{account}:log-group:{name}:*"
    ),
    "AWS::SSM::Parameter": NamedType("Name", Gives.NAME, "arn:{partition}:ssm:{region}:{account}:parameter/{name}", {}),
    "AWS::StepFunctions::StateMachine": NamedType(
        "StateMachineName",
        Gives.ARN,
        "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
        {"Arn": Gives.ARN, "Name": Gives.NAME},
    ),
    "AWS::ECR::Repository": NamedType(
        "RepositoryName", Gives.NAME, "arn:{partition}:ecr:{region}:{account}:repository/{name}"
    ),
}
