// Lambda handler: `event` is the request (an API Gateway 2.0 event for HTTP routes).
exports.handler = async (event, context) => {
  const name = (event.pathParameters && event.pathParameters.name) || 'world';
  const greeting = process.env.GREETING || 'Hello';
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: `${greeting}, ${name}!`, requestId: context.awsRequestId }),
  };
};
