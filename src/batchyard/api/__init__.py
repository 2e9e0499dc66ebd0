"""The HTTP edge: the AWS Batch rest-json API and the CloudWatch Logs subset on one endpoint.

Routes each request by botocore's service model (`protocol`), validates it against the model,
calls the service layer through the wire handlers of the operation tables (`*_wire`), and
answers the operation's output shape or an AWS-style error (`app`). camelCase lives here and
in the SDK only; below this package everything is snake_case domain objects. Batch handlers run
on the event loop thread; see docs/architecture.md (Concurrency).
"""
