"""Parses app.yaml and cron.yaml with the Google Cloud SDK's own code, offline.

These are the parsers `gcloud app deploy` runs before it uploads (appinfo through
yaml_parsing, the conversion to the Admin API Version resource, croninfo) plus the groc
schedule grammar that App Engine cron uses. Prints one JSON object: what was parsed, and the
errors found. Run with the SDK's bundled python: python3 -S gae-yaml-check.py SDK APP CRON
"""
import copy, json, os, site, sys

sdk, app_path, cron_path = sys.argv[1:4]
sys.path[0:0] = [os.path.join(sdk, 'lib'), os.path.join(sdk, 'lib', 'third_party')]
try:
    site.main()
except Exception:
    pass

from googlecloudsdk.api_lib.app import yaml_parsing  # noqa: E402
from googlecloudsdk.appengine.admin.tools.conversion import convert_yaml  # noqa: E402
from googlecloudsdk.appengine.googlecron import groctimespecification  # noqa: E402

result = {'errors': [], 'app': None, 'cron': None}


def fail(where, error):
    result['errors'].append('%s: %s' % (where, str(error).strip()))


try:
    info = yaml_parsing.ServiceYamlInfo.FromFile(app_path)
    p = info.parsed
    if info.HasExplicitSkipFiles():
        fail(app_path, 'skip_files is refused for Node.js runtimes (use .gcloudignore)')
    try:
        version = copy.deepcopy(p.ToDict())
        version.setdefault('entrypoint', '')
        convert_yaml.GetSchemaParser('v1').ConvertValue(version)
    except Exception as e:
        fail(app_path + ' (as an Admin API Version)', e)
    scaling = p.automatic_scaling
    result['app'] = {
        'service': info.module,
        'runtime': p.runtime,
        'entrypoint': p.entrypoint,
        'instance_class': p.instance_class,
        'env_variables': dict(p.env_variables or {}),
        'max_instances': scaling.max_instances if scaling else None,
        'handlers': [
            {'url': h.url, 'secure': h.secure, 'script': h.script, 'static_dir': h.static_dir}
            for h in (p.handlers or [])
        ],
    }
except Exception as e:
    fail(app_path, e)

try:
    cron = yaml_parsing.ConfigYamlInfo.FromFile(cron_path)
    jobs = []
    for job in cron.parsed.cron or []:
        try:
            groctimespecification.GrocTimeSpecification(job.schedule)
        except Exception as e:
            fail('%s: schedule %r' % (cron_path, job.schedule), e.args[0] if e.args else e)
        jobs.append({'url': job.url, 'schedule': job.schedule})
    result['cron'] = jobs
except Exception as e:
    fail(cron_path, e)

print(json.dumps(result))
