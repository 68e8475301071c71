"""bincount: count the objects in warehouse bin photos (Amazon Bin Image Dataset).

The package is kept import-light: importing it pulls in no torch, so the CDK app, the Lambda and the CLI
load fast. The modules that need torch import it themselves.
"""

__version__ = "0.1.0"
