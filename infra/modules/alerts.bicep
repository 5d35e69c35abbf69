// Alerts, as log search alert rules over Application Insights (classic table names: traces,
// requests), each notifying the optional action group. Their queries are checked by Kusto's own
// language service in make test (tests/kusto).
//
// 1. Poison messages. The Functions host moves a queue message that failed maxDequeueCount times to
//    "<queue>-poison" and logs the warning "Message has reached MaxDequeueCount of N. Moving message
//    to queue '<queue>-poison'." (Host.Triggers.Queue). The rule fires per queue on any such line.
//    Why not a storage metric: QueueMessageCount is per storage account (all queues together, so
//    a normal backlog on webhook-events would fire it) and only hourly; it cannot say "anything in
//    a poison queue". Trade-off of the log rule: it sees the move, not the standing queue length,
//    so it does not auto-resolve (autoMitigate false): someone must look at the poison queue and
//    close the alert. It also depends on that warning reaching App Insights (keep the host's log
//    level at Warning or lower for Host.Triggers.Queue, and sampling off for traces of that level).
//    Queues of this app: jobs, webhook-events, mail-outbox (TABLE_PREFIX
//    is empty in Azure); any other "-poison" queue is caught too.
// 2. 5xx rate: share of requests (the host's request telemetry) answered 5xx over 15 minutes.
// 3. Webhook silence: a meeting session is live (an applied meeting.started with no later applied
//    meeting.ended, from the app's JSON log lines {"operation": "events.apply", "event": ...}) and no
//    verified delivery ({"operation": "webhooks.receive", "status": 200}) arrived for
//    webhookSilenceMinutes. The session key is the line's sessionId, else its meetingId.
// 4. Stuck background work, the work GET /api/health counts as stuck, seen in the log lines of the
//    work itself, per kind: a follow-up, account closing, email or recording copy whose dependency has been
//    unavailable for more than 10 minutes ({"operation": "pending.retry", "attempts": n} with
//    n >= 10: the retry delays 2, 4, ... 512 s add up to 1022 s), and webhook deliveries recorded but
//    not applied after 10 minutes ("events.sweep" with "requeued" > 0: the sweep re-enqueues only
//    those). Stuck work logs at least hourly, so the one-hour window keeps the alert open.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Prefix for the alert rule names (the resourceToken).')
param namePrefix string

@description('Resource ID of the Application Insights component the rules query.')
param applicationInsightsId string

@description('Resource ID of an action group to notify; empty: no notification.')
param actionGroupId string = ''

@minValue(15)
@maxValue(1440)
@description('Minutes without a verified webhook delivery, while a meeting is live, before the alert fires.')
param webhookSilenceMinutes int = 60

@minValue(1)
@maxValue(48)
@description('Hours to look back for meetings that started and have not ended.')
param liveMeetingLookbackHours int = 12

@minValue(1)
@maxValue(100)
@description('Percentage of 5xx responses over 15 minutes that fires the 5xx alert.')
param http5xxPercentThreshold int = 5

@minValue(1)
@description('Minimum requests in the 15-minute window before the 5xx alert may fire.')
param http5xxMinimumRequests int = 20

var actionGroups = (empty(actionGroupId)) ? [] : [
  actionGroupId
]

var poisonQuery = '''
traces
| where message has "Moving message to queue" and message contains "-poison"
| extend queueName = extract("queue '([^']+)'", 1, message)
| summarize moved = count() by queueName
'''

var stuckWorkQuery = '''
traces
| where message startswith "{"
| extend m = parse_json(message)
| extend operation = tostring(m.operation)
| where (operation == "pending.retry" and toint(m.attempts) >= 10)
    or (operation == "events.sweep" and toint(m.requeued) > 0)
| extend work = iff(operation == "pending.retry", tostring(m.work), "webhook deliveries")
| summarize stuck = count() by work
'''

// {0}: minimum request count, {1}: percentage threshold.
var http5xxQueryTemplate = '''
requests
| summarize total = count(), failed = countif(toint(resultCode) >= 500)
| where total >= {0}
| extend failedPercent = round(100.0 * failed / total, 1)
| where failedPercent > {1}
'''

// {0}: silence in minutes, {1}: lookback in hours.
var webhookSilenceQueryTemplate = '''
let silence = {0}m;
let lookback = {1}h;
let appLines = traces
    | where timestamp > ago(lookback)
    | where message has "operation"
    | extend m = parse_json(message)
    | extend operation = tostring(m.operation)
    | where operation in ("events.status", "webhooks.receive");
// The applier logs events.status when a meeting's derived status changes (live while any session
// is open): its latest line per meeting says whether the meeting is live, whatever order the
// provider's events arrived in.
let liveSessions = appLines
    | where operation == "events.status"
    | extend meetingId = tostring(m.meetingId), activity = tostring(m.activity)
    | where isnotempty(meetingId)
    | summarize arg_max(timestamp, activity) by meetingId
    | where activity == "live"
    | count;
let lastVerified = toscalar(appLines
    | where operation == "webhooks.receive" and toint(m.status) == 200
    | summarize max(timestamp));
liveSessions
| where Count > 0 and (isnull(lastVerified) or lastVerified < ago(silence))
| project openSessions = Count, lastVerifiedDelivery = lastVerified
'''

resource poisonQueueAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-poison-queue-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Message moved to a poison queue'
    description: 'A queue message failed too often and was moved to <queue>-poison. Inspect the poison queue, fix the cause, then re-enqueue or delete the message and close this alert.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: false
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'moved'
          dimensions: [
            {
              name: 'queueName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource http5xxAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-http-5xx-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'HTTP 5xx rate'
    description: 'More than ${http5xxPercentThreshold}% of at least ${http5xxMinimumRequests} requests answered 5xx in 15 minutes.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: format(http5xxQueryTemplate, http5xxMinimumRequests, http5xxPercentThreshold)
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource webhookSilenceAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-webhook-silence-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'No verified webhook delivery while meetings are live'
    description: 'A meeting is live but no verified provider webhook arrived for ${webhookSilenceMinutes} minutes: check the provider\'s webhook registration (WEBHOOK_URL output), its delivery log, and the signing key settings.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    overrideQueryTimeRange: 'PT${liveMeetingLookbackHours}H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: format(webhookSilenceQueryTemplate, webhookSilenceMinutes, liveMeetingLookbackHours)
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource stuckWorkAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-stuck-work-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Background work stuck for more than 10 minutes'
    description: 'A job, webhook deliveries or invitation emails have waited too long (GET /api/health says degraded). Jobs wait for an unavailable provider or storage; deliveries and emails were re-enqueued by their sweep. See docs/operations.md (Alerts).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT1H'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: stuckWorkQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'stuck'
          dimensions: [
            {
              name: 'work'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

output alertIds array = [
  poisonQueueAlert.id
  http5xxAlert.id
  webhookSilenceAlert.id
  stuckWorkAlert.id
]
