# Creates a CloudFormation stack in a running moto server (tests/deploy.rs): uploads a
# placeholder package, leaves out the resource types moto does not model (and what reads
# them), waits for the stack, and prints what it made. Usage:
#   python3 moto_stack.py <endpoint> <template.json> <bucket> <key>
import json, sys, time, io, zipfile, boto3
from moto.cloudformation.parsing import get_model_map
endpoint, template_path, bucket, key = sys.argv[1:5]
template = json.load(open(template_path))
supported = set(get_model_map())
unsupported = sorted({r["Type"] for r in template["Resources"].values() if r["Type"] not in supported})
for t in unsupported:
    print("UNSUPPORTED", t)
# Resources that read unmodelled ones cannot be created either (moto resolves their
# references to nothing): left out, transitively, and listed.
skipped = {name for name, r in template["Resources"].items() if r["Type"] in unsupported}
def refers(body, name):
    text = json.dumps(body)
    return any(p in text for p in ('"Ref": "%s"' % name, '["%s",' % name, "${%s}" % name, "${%s." % name))
changed = True
while changed:
    changed = False
    for n, r in template["Resources"].items():
        if n not in skipped and any(refers(r, s) for s in skipped):
            skipped.add(n)
            print("DEPENDENT", n, r["Type"])
            changed = True
template["Resources"] = {n: r for n, r in template["Resources"].items() if n not in skipped}
# moto cannot validate an output that reads an attribute of a resource it does not model.
template["Outputs"] = {k: v for k, v in template.get("Outputs", {}).items()
                       if not any(n in json.dumps(v) for n in skipped)}
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("bootstrap", "#!/bin/sh\n")
s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
cfn = boto3.client("cloudformation", **kw)
cfn.create_stack(StackName="payments", TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
for _ in range(120):
    stack = cfn.describe_stacks(StackName="payments")["Stacks"][0]
    if not stack["StackStatus"].endswith("IN_PROGRESS"):
        break
    time.sleep(0.5)
print("STATUS", stack["StackStatus"])
for r in cfn.list_stack_resources(StackName="payments")["StackResourceSummaries"]:
    print("RESOURCE", r["LogicalResourceId"], r["ResourceType"], r["ResourceStatus"])
ddb = boto3.client("dynamodb", **kw)
for t in ddb.list_tables()["TableNames"]:
    d = ddb.describe_table(TableName=t)["Table"]
    ttl = ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]
    print("TABLE", t, d.get("BillingModeSummary", {}).get("BillingMode"), d.get("SSEDescription", {}).get("SSEType"),
          ttl.get("AttributeName"))
