def handler(event, context):
    return "never used"
