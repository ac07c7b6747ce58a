"""Local emulator of the AWS IoT Greengrass v2 control plane.

It answers boto3's own ``greengrassv2`` client (components, deployments, core
devices, tags) on loopback, reads artifacts from the local moto S3, and offers
the private ``/_edgekit`` device API the local device runtime polls. Layout
follows moto: ``models`` (the backend, composed of ``state``, ``components``,
``deployments`` and ``devices``), ``responses`` (REST-JSON), ``urls`` (routes),
``server`` (HTTP); ``api_model`` is botocore's service model both routes and
responses read, ``errors`` the API's errors (:class:`GreengrassApiError`),
``store`` persistence and paging, ``s3`` artifact reads.

What a recipe means (validation, platforms, versions) is :mod:`edgekit.recipes`'s;
this package must not reimplement it, and must not import the device runtime
(``edgekit.local.device``), ``edgekit.clients`` or anything above ``edgekit.local``.
"""
