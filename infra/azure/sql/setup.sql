-- Objects the views need, in the serverless SQL database `analytics`; safe to run again.
-- Run by apply.sh with -v AGGREGATES_URL=https://ACCOUNT.dfs.core.windows.net/aggregates/aggregates
-- The data source reads with the workspace's managed identity (Storage Blob Data Reader on the
-- aggregates container, from Terraform), so no key, SAS or password is stored anywhere.

-- The master key protects the database scoped credential; without a password it is protected
-- by the service-managed key.
IF NOT EXISTS (SELECT * FROM sys.symmetric_keys WHERE name = '##MS_DatabaseMasterKey##')
    CREATE MASTER KEY;
GO

IF NOT EXISTS (SELECT * FROM sys.database_scoped_credentials WHERE name = 'workspace_identity')
    CREATE DATABASE SCOPED CREDENTIAL workspace_identity WITH IDENTITY = 'Managed Identity';
GO

-- Re-created when the output location changed (OPENROWSET resolves the name at query time).
IF EXISTS (SELECT * FROM sys.external_data_sources WHERE name = 'aggregates' AND location <> '$(AGGREGATES_URL)')
    DROP EXTERNAL DATA SOURCE aggregates;
GO

IF NOT EXISTS (SELECT * FROM sys.external_data_sources WHERE name = 'aggregates')
    CREATE EXTERNAL DATA SOURCE aggregates
    WITH (LOCATION = '$(AGGREGATES_URL)', CREDENTIAL = workspace_identity);
GO

-- File formats for CREATE EXTERNAL TABLE AS SELECT over the same data source; the views read
-- through OPENROWSET, whose filepath() prunes partition folders (external tables cannot).
IF NOT EXISTS (SELECT * FROM sys.external_file_formats WHERE name = 'parquet')
    CREATE EXTERNAL FILE FORMAT parquet WITH (FORMAT_TYPE = PARQUET);
GO

IF NOT EXISTS (SELECT * FROM sys.external_file_formats WHERE name = 'jsonl')
    CREATE EXTERNAL FILE FORMAT jsonl
    WITH (FORMAT_TYPE = DELIMITEDTEXT, FORMAT_OPTIONS (FIELD_TERMINATOR = '0x0b', STRING_DELIMITER = '0x0b'));
GO
